"""Development and operations tools: the local Kafka broker, token minting."""
