"""Multi-sensor scene simulator built on measured reflectance spectra (earthlib).

``simulate_landcover`` makes a landscape on the ground, ``render`` shows it as one sensor sees
it, ``simulate_scene`` writes images and labels for several sensors. See docs/simulator.md.
"""

from gfmcli.simulate.grid import render_labels
from gfmcli.simulate.landcover import (
    BIOMES,
    KIND_CLASS,
    LANDCOVER_CLASSES,
    LandCoverMap,
    SimulatorError,
    simulate_landcover,
)
from gfmcli.simulate.render import (
    LABEL_NODATA,
    LEVELS,
    Rendering,
    band_response,
    render,
    swath_mask,
)
from gfmcli.simulate.scene import DEFAULT_SENSORS, simulate_scene
from gfmcli.simulate.spectra import (
    KINDS,
    SEASONS,
    SimulatorDependencyError,
    SpectralLibrary,
    load_library,
    sample_object_spectra,
    water_reflectance,
)

__all__ = [
    "BIOMES",
    "DEFAULT_SENSORS",
    "KINDS",
    "KIND_CLASS",
    "LABEL_NODATA",
    "LANDCOVER_CLASSES",
    "LEVELS",
    "SEASONS",
    "LandCoverMap",
    "Rendering",
    "SimulatorDependencyError",
    "SimulatorError",
    "SpectralLibrary",
    "band_response",
    "load_library",
    "render",
    "render_labels",
    "sample_object_spectra",
    "simulate_landcover",
    "simulate_scene",
    "swath_mask",
    "water_reflectance",
]
