"""The agent's MQTT connection (paho-mqtt): subscriptions in, publications out, one queue.

paho runs the socket in its own thread; every message received is put on ``inbox`` and the
agent's single loop takes them from there, so the agent's state is only ever touched by one
thread. The session is persistent (a fixed client id, ``clean_session=False``, QoS 1): what
the device publishes while its agent is down (killed, restarting) waits in the broker and is
delivered when it reconnects, and paho reconnects by itself after a broken connection. A
message is acknowledged to the broker only once the agent has handled it (``done``), so one
received but still queued here when the agent is killed is delivered again after restart.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger("smartchain.agent.mqtt")

QOS = 1
CONNECT_TIMEOUT = 15.0


class MqttError(RuntimeError):
    """The broker could not be reached."""


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int = 0  # the broker's message id: acknowledged by ``MqttLink.done``
    qos: int = 0


class MqttLink:
    """A connected paho client whose received messages go to ``inbox``."""

    def __init__(self, host: str, port: int, client_id: str, *,
                 persistent: bool = True) -> None:
        self.host, self.port = host, port
        self.inbox: queue.Queue[Incoming] = queue.Queue()
        self._topics: set[str] = set()
        self._connected = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   clean_session=not persistent, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.max_queued_messages_set(0)  # unbounded: nothing dropped while offline

    def connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise MqttError(f"cannot reach the MQTT broker at {self.host}:{self.port}: "
                            f"{exc}") from None
        self._client.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise MqttError(f"the MQTT broker at {self.host}:{self.port} did not accept "
                            f"the connection in {timeout:.0f}s")

    def subscribe(self, topic: str) -> None:
        self._topics.add(topic)
        if self._connected.is_set():  # else on_connect subscribes it
            self._client.subscribe(topic, qos=QOS)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue ``payload`` for the broker (sent now, or once reconnected)."""
        self._client.publish(topic, payload, qos=QOS, retain=retain)

    def done(self, msg: Incoming) -> None:
        """Acknowledge a handled message: the broker will not deliver it again."""
        self._client.ack(msg.mid, msg.qos)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # --- paho's callbacks (its network thread) ---------------------------------------------

    def _on_connect(self, client: paho.Client, _userdata: object, _flags: object,
                    reason: object, _props: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        for topic in sorted(self._topics):  # again after a reconnect to a fresh broker
            client.subscribe(topic, qos=QOS)
        self._connected.set()

    def _on_disconnect(self, _client: paho.Client, _userdata: object, _flags: object,
                       reason: object, _props: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connection lost (%s): reconnecting", reason)

    def _on_message(self, _client: paho.Client, _userdata: object,
                    message: paho.MQTTMessage) -> None:
        self.inbox.put(Incoming(message.topic, bytes(message.payload), message.mid,
                                message.qos))
