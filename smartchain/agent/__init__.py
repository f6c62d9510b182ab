"""SmartAgent: a device's agent on the chain (docs/agent.md).

Light by design: it is built on the SDK (``smartchain.client``), the modules' wire types and
paho-mqtt, never on the node, so it runs on the device or beside it. Running compute tasks
(``[compute] share``) loads the compute engine, and only then.
"""
