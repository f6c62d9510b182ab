"""Peer-to-peer networking: transport, peers, DHT, gossip, request/response, block sync."""
