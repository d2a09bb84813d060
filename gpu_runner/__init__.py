"""gpu_runner: DSI, SI and non-SI with real transformers models, checked against dsi_ref.

torch and transformers are needed here (the `gpu` extra); dsi_ref never imports this package.
"""
