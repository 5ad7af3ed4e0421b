"""Class activation maps from saved checkpoints, and how well they localise.

`compute_cam` is the notebook API; `resdeep.cam.evaluate` (the benchmark), `resdeep.cam.render`
(overlays) and `resdeep.cam.localize` (boxes) are imported where they are used.
"""

from resdeep.cam.api import CamOutput, class_activation_maps, compute_cam
from resdeep.cam.methods import METHODS

__all__ = ["METHODS", "CamOutput", "class_activation_maps", "compute_cam"]
