"""A config built in code, and a call flow (docs/guide/configuration.rst)."""

import telcoflow_trio as tf


def make_config(
    api_key: str, connector_uuid: str, base_url: str
) -> tuple[tf.SessionManagerConfig, tf.CallFlowConfig]:
    # [config]
    config = tf.SessionManagerConfig.create(
        api_key=api_key,  # or cert_path=..., key_path=... (mTLS)
        connector_uuid=connector_uuid,
        base_url=base_url,  # such as ws://127.0.0.1:8080; default: wss://wss-prod.agentao.com
        call_audio=tf.CallAudioConfig(sample_rate=24000, audio_mode=tf.AudioMode.MIXED),
    )
    flow = tf.CallFlowBuilder().inbound_call(tf.InboundCallMode.ALL).build()
    # [/config]
    return config, flow
