"""Geometry-grounded answers: measure regions in metric depth, then relate them.

ROS-free numpy (+ OpenCV, imported inside the functions that need it). The usual path::

    camera = CameraModel.from_camera_info(info_msg)
    scene = measure_scene(masks, depth, '16UC1', camera, labels)
    relations.distance(scene.regions[0], scene.regions[1]).value  # metres

``camera`` the camera model, ``floor`` the floor plane and frame, ``regions`` per-region
measurement, ``centres`` the dataset's object-centre definitions, ``relations`` the answers,
``priors`` optional class sizes.
"""

from smolrgpt_core.geometry.camera import CameraModel
from smolrgpt_core.geometry.centres import FLOOR_CLASSES, OBJECT_CLASSES
from smolrgpt_core.geometry.floor import FloorFrame, FloorPlane, fit_floor
from smolrgpt_core.geometry.footprint import Footprint
from smolrgpt_core.geometry.priors import ClassPrior, ClassPriors, load_class_priors
from smolrgpt_core.geometry.regions import (
    RegionGeometry,
    SceneGeometry,
    measure_regions,
    measure_scene,
)
from smolrgpt_core.geometry.relations import NotMeasurable, Relation

__all__ = [
    'FLOOR_CLASSES',
    'OBJECT_CLASSES',
    'CameraModel',
    'ClassPrior',
    'ClassPriors',
    'FloorFrame',
    'FloorPlane',
    'Footprint',
    'NotMeasurable',
    'RegionGeometry',
    'Relation',
    'SceneGeometry',
    'fit_floor',
    'load_class_priors',
    'measure_regions',
    'measure_scene',
]
