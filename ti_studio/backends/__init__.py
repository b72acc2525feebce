"""Training backends that run a model themselves (the WebUI's backend, over the host's loaded model, lives in
``ti_studio.webui``). Import the backend module you need: each imports its ML libraries lazily, and this package
imports none, so the host never pays for diffusers."""
