"""Co-purchase counts for recommendations: the pure decisions of the two recommendations agents.

- `split(event)`: a confirmed order (OrderStatusChanged carrying its lines, keyed by order id) gives
  one CountCoPurchase per distinct SKU of the order that was bought with another (keyed
  `<tenant>/<sku>`: the other SKUs), and one for the tenant's popularity entry (key `<tenant>/*`:
  every SKU of the order).
- `decide(state, event, now)`: a CountCoPurchase adds 1 to the score of each SKU it names, at the
  order's confirmation time. Scores decay exponentially, halved every `half_life`: the state keeps
  them as of `decayed_at`, so a score is `sum(0.5 ** ((decayed_at - confirmed_at) / half_life))`
  over the orders counted. A count later than `decayed_at` first decays every score to its time; an
  earlier one (orders arrive in any order across partitions) adds its weight decayed to
  `decayed_at`. Only the top MAX_SCORES are kept (ties by SKU). Time is the event's own, never the
  clock, so a command processed again after a crash is decided as the first time; and a command
  whose order was counted already (REMEMBERED_ORDERS, per key) changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from streams.models import POPULARITY, CoPurchases, CountCoPurchase, Envelope, OrderStatusChanged
from streams.tables.decision import Decision, UnhandledEvent

# SKUs kept per key, by score: what a recommendation can choose from.
MAX_SCORES = 50
# Order ids remembered per key, newest last: a replay of any of them counts nothing twice.
REMEMBERED_ORDERS = 1000


def split(event: Envelope) -> list[CountCoPurchase]:
    """The counts a confirmed order asks for; nothing for any other order event."""
    changed = event.payload
    if not isinstance(changed, OrderStatusChanged) or changed.lines is None:
        return []
    skus = sorted({line.sku for line in changed.lines})
    at = event.occurred_at
    counts = [CountCoPurchase(sku=sku, bought_with=tuple(other for other in skus if other != sku),
                              order_id=changed.order_id, confirmed_at=at)
              for sku in skus if len(skus) > 1]
    return [*counts, CountCoPurchase(sku=POPULARITY, bought_with=tuple(skus), order_id=changed.order_id,
                                     confirmed_at=at)]


def decay_factor(elapsed: timedelta, half_life: timedelta) -> float:
    """How much a weight keeps after `elapsed`: 0.5 every half-life."""
    return 0.5 ** (elapsed / half_life)


def count(state: CoPurchases | None, tenant: str, command: CountCoPurchase,
          half_life: timedelta) -> CoPurchases:
    order = str(command.order_id)
    if state is None:
        state = CoPurchases(tenant=tenant, sku=command.sku)
    if order in state.counted:
        return state
    at = command.confirmed_at
    scores = dict(state.scores)
    if state.decayed_at is None or at >= state.decayed_at:
        keep = 1.0 if state.decayed_at is None else decay_factor(at - state.decayed_at, half_life)
        scores = {sku: score * keep for sku, score in scores.items()}
        decayed_at, weight = at, 1.0
    else:
        decayed_at, weight = state.decayed_at, decay_factor(state.decayed_at - at, half_life)
    for sku in command.bought_with:
        if sku != command.sku:
            scores[sku] = scores.get(sku, 0.0) + weight
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:MAX_SCORES]
    return state.model_copy(update={
        "scores": dict(ranked), "decayed_at": decayed_at, "orders": state.orders + 1,
        "counted": (*state.counted, order)[-REMEMBERED_ORDERS:],
    })


def decide(state: CoPurchases | None, event: Envelope, now: datetime, *,
           half_life: timedelta) -> Decision[CoPurchases | None]:
    """`now` is not used: the time that counts is the order's confirmation, carried by the command."""
    if not isinstance(event.payload, CountCoPurchase):
        raise UnhandledEvent(f"the recommendations agent does not handle {event.type}")
    return Decision(count(state, event.tenant, event.payload, half_life))


def ranked(state: dict[str, object] | None, exclude: str) -> list[tuple[str, float]]:
    """A table value as a reader has it: its SKUs by score, highest first, without `exclude`."""
    if not state:
        return []
    scores = state.get("scores") or {}
    assert isinstance(scores, dict)
    return sorted(((sku, float(score)) for sku, score in scores.items() if sku != exclude),
                  key=lambda item: (-item[1], item[0]))
