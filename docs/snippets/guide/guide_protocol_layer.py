"""The sans-IO protocol layer: decode what arrives, encode what leaves
(docs/guide/protocol-layer.rst)."""

import logging

from telcoflow_trio.protocol import Unrecognised, control, voice

log = logging.getLogger(__name__)


# [decode]
def on_control_text(text: str) -> tuple[str, str] | None:
    frame = control.decode_server_frame(text)  # never raises
    match frame:
        case control.CallIn(session_id=sid, call_id=cid):
            return sid, cid
        case Unrecognised(reason=why):
            log.debug("ignored frame: %s", why)  # the reason is safe to log; the raw text is not
    return None


def encode(pcm: bytes) -> tuple[str, bytes]:
    text = control.encode_frame(control.SessionOpen("session-id"))  # fresh reqId included
    data = voice.encode_audio(voice.AudioFrame(0, pcm))  # channel byte, then PCM
    return text, data


# [/decode]
