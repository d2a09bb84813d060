"""dsi_ref: a verified pure-Python reference of non-SI, SI and DSI."""

from dsi_ref.config import RunConfig
from dsi_ref.errors import DSIError
from dsi_ref.exact import exact_law
from dsi_ref.latency import Latency
from dsi_ref.models import LanguageModel, MarkovModel, MixtureDrafter, random_markov
from dsi_ref.nonsi import run_nonsi
from dsi_ref.randomness import SeededChooser
from dsi_ref.result import RunResult
from dsi_ref.sampling import SamplingConfig
from dsi_ref.si import run_si
from dsi_ref.virtual import run_dsi

__all__ = [
    "DSIError",
    "LanguageModel",
    "Latency",
    "MarkovModel",
    "MixtureDrafter",
    "RunConfig",
    "RunResult",
    "SamplingConfig",
    "SeededChooser",
    "exact_law",
    "random_markov",
    "run_dsi",
    "run_nonsi",
    "run_si",
]
