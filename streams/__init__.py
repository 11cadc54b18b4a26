"""FusionCommerce Streams: the event backbone of a multi-tenant marketplace."""
