"""The project's stream runtime on confluent-kafka and rocksdict (docs/adr/0001-runtime.md).

One process is one consumer group member. Its parts, each in its own module:

- `agent.py`     what an agent binds: source topics, the table it writes, the tables it reads, its
                 pure decision, its deadline timer and how its values are rendered for reads;
- `stores.py`    one RocksDB store per table partition, holding committed state only, with the
                 changelog offset it reflects;
- `task.py`      the work of one partition number (Kafka Streams' `StreamTask`): its stores, the
                 open transaction's write cache, decoding, dead letters, decisions, outputs;
- `checkpoint.py` the commit, in the order its docstring gives;
- `recovery.py`  restoring a store from its changelog, from the stored offset to the end;
- `timers.py`    due times in a sorted index inside a store, fired inside the owner's transaction;
- `loop.py`      the processing thread (Kafka Streams' `StreamThread`): the consumer, the one
                 transactional producer, rebalances, batches, failures;
- `reads.py`     the HTTP server of committed state, long polls and readiness;
- `worker.py`    a process: settings, agents, the processing thread and the read server, signals.
"""
