"""The simulated tabletop: load the MJCF world, lay out an episode from a seed, track joint
targets, render cameras, and report the true state. No ROS imports.

The world is the model file (assets/tabletop.xml); this code only lays it out and
steps it. One `SimWorld` is not thread-safe: the ROS node serialises access with a
lock and renders through its own `CameraRenderer` in the thread that owns the GL context.

Joint targets are tracked the way a joint position controller would: each command
starts a linear ramp of the servo setpoints from where they are to the new target
over `duration` seconds, never faster than the joint velocity limits of vla_ros/arm.py.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import mujoco  # after vla_ros/sim/__init__.py chose the GL backend
import numpy as np

from vla_ros import arm, vocabulary
from vla_ros.policies.base import CONTROL_DT, Observation
from vla_ros.sim import tasks
from vla_ros.sim.state import Body, WorldState

ASSET_PATH = Path(__file__).resolve().parent / "assets" / "tabletop.xml"
CAMERAS = ("scene", "wrist")

# Where things may be laid out (x range, y range), metres in the world frame.
OBJECT_AREA = ((0.32, 0.64), (-0.24, 0.24))
PLATE_AREA = ((0.32, 0.64), (-0.30, 0.30))
PUSH_AREA = ((0.25, 0.72), (-0.36, 0.36))  # a pushed object's whole path stays in here
# Free space between neighbours: room for an open finger beside a grasped object.
OBJECT_GAP = 0.05
PLATE_GAP = 0.02
NUM_OBJECTS_RANGE = (3, 5)  # objects per episode when not given
SETTLE_TIME = 0.1  # seconds of physics after a reset so that objects rest on the table
STORAGE = np.array([0.0, -3.0])  # parking spot for objects not in the episode (out of view)

# Randomisation per seed.
LIGHT_DIRECTION_NOISE = 0.15
LIGHT_INTENSITY_RANGE = (0.75, 1.25)
CAMERA_POSITION_JITTER = 0.015  # m, per axis
CAMERA_ANGLE_JITTER = np.radians(1.5)


def body_name(vocabulary_name: str) -> str:
    """MJCF body of an object or plate: 'red cube' -> 'red_cube'."""
    return vocabulary_name.replace(" ", "_")


@dataclass(frozen=True)
class _Item:
    name: str  # vocabulary name
    geom: int
    half_height: float
    radius: float  # horizontal half extent (a cube's half side)
    footprint: float  # radius of the disc that holds it in any orientation


class CameraRenderer:
    """Offscreen RGB renderer of one size, shadows off. Belongs to the thread that created it."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int):
        try:
            self._renderer = mujoco.Renderer(model, height, width)
        except mujoco.FatalError as err:
            raise RuntimeError(
                "cannot render: no OpenGL context. MuJoCo reads MUJOCO_GL when it is first imported: set "
                f"MUJOCO_GL=egl (or osmesa) before anything imports mujoco (now {os.environ.get('MUJOCO_GL')!r})"
            ) from err
        # Shadows and reflections cost several times the frame rate on CPU rendering.
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._thread = threading.get_ident()
        self.width, self.height = width, height

    def update(self, data: mujoco.MjData, camera: str) -> None:
        """Take the scene from `data` (cheap; hold the world's lock around this)."""
        self._check_thread()
        self._renderer.update_scene(data, camera)
        # update_scene resets nothing but the option flags; keep shadows off explicitly.
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False

    def pixels(self) -> np.ndarray:
        """Render the last updated scene: (height, width, 3) uint8 RGB."""
        self._check_thread()
        return self._renderer.render()

    def close(self) -> None:
        self._renderer.close()

    def _check_thread(self) -> None:
        if threading.get_ident() != self._thread:
            raise RuntimeError("a CameraRenderer is used only by the thread that created it (its GL context)")


class SimWorld:
    """The tabletop world of one process: reset(seed), command/step, snapshot, render."""

    def __init__(self, image_size: int | tuple[int, int] = 224, wrist_camera: bool = False):
        self.model = mujoco.MjModel.from_xml_path(str(ASSET_PATH))
        self.data = mujoco.MjData(self.model)
        self.image_height, self.image_width = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.wrist_camera = wrist_camera
        m = self.model
        self._arm_qpos = np.array([m.joint(n).qposadr[0] for n in arm.ARM_JOINTS])
        self._arm_dofs = np.array([m.joint(n).dofadr[0] for n in arm.ARM_JOINTS])
        self._finger_qpos = np.array([m.joint(n).qposadr[0] for n in (arm.GRIPPER_JOINT, arm.GRIPPER_MIMIC_JOINT)])
        self._finger_dofs = np.array([m.joint(n).dofadr[0] for n in (arm.GRIPPER_JOINT, arm.GRIPPER_MIMIC_JOINT)])
        self._actuators = np.array([m.actuator(n).id for n in arm.COMMANDED_JOINTS])
        self._limits = arm.limits_arrays(arm.COMMANDED_JOINTS)
        self._tcp_site = m.site("tcp").id
        self._finger_geoms = (m.geom("left_finger").id, m.geom("right_finger").id)
        self._objects = {name: self._item(name) for name in vocabulary.OBJECTS}
        self._plates = {name: self._item(name) for name in vocabulary.PLATES}
        self._object_joint = {name: m.joint(body_name(name)) for name in vocabulary.OBJECTS}
        self._plate_mocap = {name: m.body_mocapid[m.body(body_name(name)).id] for name in vocabulary.PLATES}
        self._geom_to_object = {item.geom: name for name, item in self._objects.items()}
        # Nominal lights and scene camera, re-randomised from these at every reset.
        self._light_dir = m.light_dir.copy()
        self._light_diffuse = m.light_diffuse.copy()
        self._headlight_ambient = m.vis.headlight.ambient.copy()
        self._scene_camera = m.camera("scene").id
        self._camera_pos = m.cam_pos[self._scene_camera].copy()
        self._camera_quat = m.cam_quat[self._scene_camera].copy()

        self.seed: int | None = None
        self.present: tuple[str, ...] = ()
        self.task: dict | None = None
        self._task_start: WorldState | None = None
        self._task_start_time = 0.0
        self._setpoint = arm.home_vector()
        self._goal = self._setpoint.copy()
        self._rate = np.zeros(len(arm.COMMANDED_JOINTS))
        self._max_rate = self._limits["velocity"] * m.opt.timestep
        self._renderer: CameraRenderer | None = None
        self.reset(0)

    def _item(self, name: str) -> _Item:
        geom = self.model.geom(self.model.body(body_name(name)).geomadr[0])
        size = geom.size
        if geom.type[0] == mujoco.mjtGeom.mjGEOM_BOX:
            half_height, radius, footprint = size[2], size[0], float(np.hypot(size[0], size[1]))
        else:  # cylinder: size = (radius, half height)
            half_height, radius, footprint = size[1], size[0], size[0]
        return _Item(name, geom.id, float(half_height), float(radius), footprint)

    # ----------------------------------------------------------------- episodes

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self, seed: int, task: dict | None = None, num_objects: int | None = None) -> None:
        """Lay out a new episode from `seed` (deterministic): which objects, where, lighting,
        camera jitter and the arm's start pose. With a `task`, its objects are on the table,
        a push has room for its path, the start pose suits it and it becomes the current task."""
        spec = tasks.validate(task) if task is not None else None
        rng = np.random.default_rng(seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self.seed = int(seed)
        self._lay_out(rng, spec, num_objects)
        self._randomise_looks(rng)
        start = arm.home_vector()
        start[:7] += tasks.start_arm_offsets(spec, rng)
        start[7] = tasks.start_gripper(spec) if spec is not None else start[7]
        start = np.clip(start, self._limits["lower"], self._limits["upper"])
        self._setpoint = start.copy()
        self._goal = start.copy()
        self._rate[:] = 0.0
        d.ctrl[self._actuators] = start
        self.pose_arm(start)
        self._run_substeps(int(round(SETTLE_TIME / m.opt.timestep)))
        d.time = 0.0
        self.task = None
        if spec is not None:
            self.set_task(spec)

    def _lay_out(self, rng: np.random.Generator, spec: dict | None, num_objects: int | None) -> None:
        required = list(tasks.objects_of(spec)) if spec is not None else []
        low, high = NUM_OBJECTS_RANGE
        count = int(rng.integers(low, high + 1)) if num_objects is None else int(num_objects)
        if not len(required) <= count <= len(vocabulary.OBJECTS):
            raise ValueError(f"num_objects must be in [{max(1, len(required))}, {len(vocabulary.OBJECTS)}], got {count}")
        others = [name for name in vocabulary.OBJECTS if name not in required]
        chosen = required + [others[i] for i in rng.permutation(len(others))[: count - len(required)]]
        path = {spec["object"]: tasks.push_path(spec)} if spec is not None and spec["task"] == "push" else {}
        for _ in range(100):
            placed = self._try_layout(rng, chosen, path)
            if placed is not None:
                break
        else:
            raise RuntimeError(f"no layout found for {chosen} (seed {self.seed})")
        for name, (x, y) in placed.items():
            if name in self._plates:
                self.data.mocap_pos[self._plate_mocap[name]] = [x, y, 0.0]
        for index, name in enumerate(vocabulary.OBJECTS):
            item = self._objects[name]
            if name in placed:
                xy, yaw = placed[name], rng.uniform(0.0, 2 * np.pi)
            else:
                xy, yaw = STORAGE + [0.1 * index, 0.0], 0.0
            address = self._object_joint[name].qposadr[0]
            self.data.qpos[address : address + 3] = [xy[0], xy[1], item.half_height + 0.0005]
            self.data.qpos[address + 3 : address + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        # Sorted in vocabulary order so that the same layout lists the same way.
        self.present = tuple(name for name in vocabulary.OBJECTS if name in chosen)

    def _try_layout(self, rng, objects: list[str], paths: dict) -> dict[str, np.ndarray] | None:
        discs: list[tuple[np.ndarray, float]] = []  # occupied (centre, radius)
        placed: dict[str, np.ndarray] = {}

        def free(centre, radius, gap) -> bool:
            return all(np.linalg.norm(centre - c) >= radius + r + gap for c, r in discs)

        for name in vocabulary.PLATES:
            radius = self._plates[name].radius
            for _ in range(200):
                centre = _uniform_in(rng, PLATE_AREA)
                if free(centre, radius, PLATE_GAP):
                    break
            else:
                return None
            discs.append((centre, radius))
            placed[name] = centre
        for name in objects:
            radius = self._objects[name].footprint
            offsets = paths.get(name, [np.zeros(2)])
            for _ in range(200):
                centre = _uniform_in(rng, OBJECT_AREA)
                sweep = [centre + offset for offset in offsets]
                if all(_inside(p, PUSH_AREA) for p in sweep) and all(free(p, radius, OBJECT_GAP) for p in sweep):
                    break
            else:
                return None
            discs.extend((p, radius) for p in sweep)
            placed[name] = centre
        return placed

    def _randomise_looks(self, rng: np.random.Generator) -> None:
        m = self.model
        directions = self._light_dir + rng.normal(0.0, LIGHT_DIRECTION_NOISE, self._light_dir.shape)
        m.light_dir[:] = directions / np.linalg.norm(directions, axis=1, keepdims=True)
        m.light_diffuse[:] = self._light_diffuse * rng.uniform(*LIGHT_INTENSITY_RANGE, (len(self._light_diffuse), 1))
        m.vis.headlight.ambient[:] = self._headlight_ambient * rng.uniform(*LIGHT_INTENSITY_RANGE)
        m.cam_pos[self._scene_camera] = self._camera_pos + rng.uniform(-CAMERA_POSITION_JITTER, CAMERA_POSITION_JITTER, 3)
        axis = rng.normal(size=3)
        tilt = np.zeros(4)
        mujoco.mju_axisAngle2Quat(tilt, axis / np.linalg.norm(axis), rng.uniform(0.0, CAMERA_ANGLE_JITTER))
        quat = np.zeros(4)
        mujoco.mju_mulQuat(quat, self._camera_quat, tilt)
        m.cam_quat[self._scene_camera] = quat

    def set_task(self, task: dict) -> dict:
        """Make `task` the current task from now on (its timer and push start here).
        Returns the checked spec; raises tasks.TaskError when the scene cannot host it."""
        spec = tasks.validate(task)
        missing = [name for name in tasks.objects_of(spec) if name not in self.present]
        if missing:
            raise tasks.TaskError(
                f"{' and '.join(missing)} not on the table (present: {', '.join(self.present) or 'nothing'})")
        if spec["task"] == "push":
            start = self.data.geom_xpos[self._objects[spec["object"]].geom][:2]
            destination = start + tasks.push_path(spec)[-1]
            if not _inside(destination, PUSH_AREA):
                raise tasks.TaskError(
                    f"pushing the {spec['object']} {spec['direction']} by {spec['distance']} m would leave the "
                    f"reachable area x {PUSH_AREA[0]}, y {PUSH_AREA[1]} (it is at {np.round(start, 3).tolist()})")
        self.task = spec
        self._task_start = self.snapshot()
        self._task_start_time = self.time
        return spec

    def clear_task(self) -> None:
        self.task = None

    def task_elapsed(self) -> float:
        return self.time - self._task_start_time if self.task is not None else 0.0

    def success(self) -> bool:
        """Whether the current task's success check holds now (False without a task)."""
        if self.task is None:
            return False
        return tasks.check_success(self.task, self.snapshot(), self._task_start)

    # ------------------------------------------------------------------ control

    def command(self, targets, duration: float = 0.0) -> None:
        """New joint targets (8, COMMANDED_JOINTS order): the setpoints ramp to them linearly
        over `duration` seconds, capped at the velocity limits. Raises ValueError for a
        wrong shape or non-finite values, and for targets outside the joint limits."""
        goal = np.asarray(targets, dtype=float)
        if goal.shape != self._setpoint.shape:
            raise ValueError(f"expected {len(self._setpoint)} joint targets, got shape {goal.shape}")
        if not np.all(np.isfinite(goal)):
            raise ValueError("joint targets must be finite")
        outside = (goal < self._limits["lower"] - 1e-9) | (goal > self._limits["upper"] + 1e-9)
        if outside.any():
            names = [arm.COMMANDED_JOINTS[i] for i in np.flatnonzero(outside)]
            raise ValueError(f"joint targets outside the limits: {', '.join(names)}")
        substeps = max(1, int(round(duration / self.model.opt.timestep)))
        self._goal = goal
        self._rate = np.minimum(np.abs(goal - self._setpoint) / substeps, self._max_rate)

    def advance(self, seconds: float) -> None:
        """Run the physics for `seconds` of simulated time, tracking the current targets."""
        self._run_substeps(max(1, int(round(seconds / self.model.opt.timestep))))

    def step(self, targets) -> None:
        """One control period: track `targets` over CONTROL_DT."""
        self.command(targets, CONTROL_DT)
        self.advance(CONTROL_DT)

    def _run_substeps(self, count: int) -> None:
        m, d = self.model, self.data
        for _ in range(count):
            self._setpoint += np.clip(self._goal - self._setpoint, -self._rate, self._rate)
            d.ctrl[self._actuators] = self._setpoint
            mujoco.mj_step(m, d)

    # -------------------------------------------------------------------- state

    def joint_positions(self) -> np.ndarray:
        """(8,) positions of arm.COMMANDED_JOINTS."""
        return np.append(self.data.qpos[self._arm_qpos], self.data.qpos[self._finger_qpos[0]])

    def pose_arm(self, positions) -> None:
        """Put the arm at (8,) positions (arm.COMMANDED_JOINTS) at once, without dynamics: for
        rendering still scenes (vision pretraining), not for stepping on from."""
        positions = np.clip(np.asarray(positions, dtype=float), self._limits["lower"], self._limits["upper"])
        self.data.qpos[self._arm_qpos] = positions[:7]
        self.data.qpos[self._finger_qpos] = positions[7]
        mujoco.mj_forward(self.model, self.data)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, velocities and efforts of arm.STATE_JOINTS (for /joint_states)."""
        d = self.data
        qpos = np.concatenate([d.qpos[self._arm_qpos], d.qpos[self._finger_qpos]])
        qvel = np.concatenate([d.qvel[self._arm_dofs], d.qvel[self._finger_dofs]])
        effort = np.concatenate([d.qfrc_actuator[self._arm_dofs], d.qfrc_actuator[self._finger_dofs]])
        return qpos, qvel, effort

    def joint_goal(self) -> np.ndarray:
        """(8,) the targets being tracked."""
        return self._goal.copy()

    def tcp_position(self) -> np.ndarray:
        return self.data.site_xpos[self._tcp_site].copy()

    def in_hand(self) -> frozenset[str]:
        """Objects touching both fingers."""
        touching: dict[str, set[int]] = {}
        contacts = self.data.contact
        for g1, g2 in contacts.geom[: self.data.ncon]:
            for finger, other in ((g1, g2), (g2, g1)):
                if finger in self._finger_geoms and other in self._geom_to_object:
                    touching.setdefault(self._geom_to_object[other], set()).add(finger)
        return frozenset(name for name, fingers in touching.items() if len(fingers) == 2)

    def snapshot(self) -> WorldState:
        """The true state, for success checks and the expert."""
        bodies = {}
        for name, item in list(self._plates.items()) + [(n, self._objects[n]) for n in self.present]:
            bodies[name] = Body(self.data.geom_xpos[item.geom].copy(), item.half_height, item.radius)
        return WorldState(self.task_elapsed(), self.joint_positions(), self.tcp_position(), bodies, self.in_hand())

    def footprint(self, name: str) -> float:
        """Radius of the disc an object covers in any orientation (m)."""
        return self._objects[name].footprint

    def object_yaw(self, name: str) -> float:
        """Rotation of an object about the vertical (rad)."""
        xmat = self.data.geom_xmat[self._objects[name].geom].reshape(3, 3)
        return float(np.arctan2(xmat[1, 0], xmat[0, 0]))

    def object_poses(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Position and quaternion (w, x, y, z) of every object and plate on the table."""
        poses = {}
        for name in self.present + vocabulary.PLATES:
            item = self._objects.get(name) or self._plates[name]
            quat = np.zeros(4)
            mujoco.mju_mat2Quat(quat, self.data.geom_xmat[item.geom])
            poses[name] = (self.data.geom_xpos[item.geom].copy(), quat)
        return poses

    def object_shape(self, name: str) -> tuple[str, np.ndarray, np.ndarray]:
        """('box' | 'cylinder', full size (x, y, z) in m, RGBA) of an object or plate."""
        item = self._objects.get(name) or self._plates[name]
        geom = self.model.geom(item.geom)
        kind = "box" if geom.type[0] == mujoco.mjtGeom.mjGEOM_BOX else "cylinder"
        size = np.array([2 * item.radius, 2 * item.radius, 2 * item.half_height])
        rgba = self.model.mat_rgba[geom.matid[0]] if geom.matid[0] >= 0 else geom.rgba
        return kind, size, np.array(rgba)

    # ---------------------------------------------------------------- rendering

    def copy_pose_to(self, data: mujoco.MjData) -> None:
        """Copy what rendering needs into another MjData of this model, and update its frames."""
        data.qpos[:] = self.data.qpos
        data.mocap_pos[:] = self.data.mocap_pos
        data.mocap_quat[:] = self.data.mocap_quat
        mujoco.mj_kinematics(self.model, data)
        mujoco.mj_camlight(self.model, data)

    def render(self, camera: str = "scene") -> np.ndarray:
        """An RGB image (image_height, image_width, 3) uint8 from the calling thread."""
        if camera not in CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; known: {', '.join(CAMERAS)}")
        if self._renderer is None:
            self._renderer = CameraRenderer(self.model, self.image_width, self.image_height)
        self._renderer.update(self.data, camera)
        return self._renderer.pixels()

    def observation(self) -> Observation:
        """What a policy sees now: the scene image, joint positions, the wrist image if enabled."""
        wrist = self.render("wrist") if self.wrist_camera else None
        return Observation(image=self.render("scene"), state=self.joint_positions(), wrist_image=wrist)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def joint_targets_by_name(names, positions, hold: np.ndarray) -> np.ndarray:
    """Targets in COMMANDED_JOINTS order from a (names, positions) command, e.g. a JointState.

    Joints are matched by name; a command may name a subset, the others keep `hold`.
    Raises ValueError (saying why) for unknown or repeated names, mismatched lengths,
    non-finite values or targets outside the joint limits.
    """
    names, positions = list(names), list(positions)
    if not names:
        raise ValueError("no joint names")
    if len(positions) != len(names):
        raise ValueError(f"{len(names)} names but {len(positions)} positions")
    unknown = [n for n in names if n not in arm.COMMANDED_JOINTS]
    if unknown:
        raise ValueError(f"unknown joint(s) {', '.join(map(repr, unknown))}; commandable: {', '.join(arm.COMMANDED_JOINTS)}")
    if len(set(names)) != len(names):
        raise ValueError("repeated joint names")
    values = np.asarray(positions, dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError("non-finite position(s)")
    targets = np.array(hold, dtype=float)
    for name, value in zip(names, values):
        limit = arm.PANDA_LIMITS[name]
        if not limit.lower <= value <= limit.upper:
            raise ValueError(f"{name} target {value:.4f} outside [{limit.lower}, {limit.upper}]")
        targets[arm.COMMANDED_JOINTS.index(name)] = value
    return targets


def _uniform_in(rng: np.random.Generator, area) -> np.ndarray:
    (x0, x1), (y0, y1) = area
    return np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])


def _inside(point, area) -> bool:
    (x0, x1), (y0, y1) = area
    return x0 <= point[0] <= x1 and y0 <= point[1] <= y1
