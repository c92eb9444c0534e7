"""Dispatch: a parsed Dockerfile, step by step, into images, as dockerd's legacy builder does.

The builder itself touches no container or image store: the engine hands it a
`BuildWorker` (daemon/build.py) that resolves and pulls base images, runs a
RUN step in a real container and commits it, makes a layer from files
(COPY/ADD), stores config-only steps and tags the result.  Each step's
result is an image (the next step's parent), found again through the layer
cache on later builds.  Messages are dockerd's JSON stream messages, handed
to `emit` as they happen.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import EngineError, InvalidArgument
from .cache import BuildCache, cache_key
from .context import BuildContext, checksum, within_root
from .copyfiles import copy_into, owner
from .dockerfile import Dockerfile, Instruction, Stage, _parse_one, parse
from .expand import expand, expand_words

DEFAULT_SHELL = ["/bin/sh", "-c"]


class BuildFailed(EngineError):
    """A step failed; a RUN's exit status becomes errorDetail.code (the CLI exits with it)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: tuple[str, ...] = ()
    build_args: dict = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    quiet: bool = False
    remove: bool = True
    force_remove: bool = False
    labels: dict = field(default_factory=dict)
    pull: bool = False
    host_config: dict = field(default_factory=dict)  # for RUN containers: NetworkMode, ExtraHosts, ShmSize…


class BuildWorker(Protocol):
    """What the engine does for a build (implemented by daemon/build.py)."""

    def image(self, name: str, pull: bool) -> tuple[str, dict]:
        """(image ID, its config document) of `name`, pulled when missing (or always with `pull`)."""

    def exists(self, image_id: str) -> bool: ...

    def store_config(self, parent_id: str, doc: dict) -> str:
        """A new image with the parent's layers and config document `doc`; its ID."""

    def run(self, parent_id: str, run_config: dict, host_config: dict,
            started: Callable[[str], None], output: Callable[[bytes], None]) -> tuple[str, int]:
        """Create and run a container of `parent_id` with `run_config`; (container ID, exit code)."""

    def commit_container(self, container_id: str, parent_id: str, doc: dict) -> str:
        """The container's changes as one more layer on `parent_id`, with `doc`; the image ID."""

    def remove_container(self, container_id: str) -> None: ...

    def keep_container(self, container_id: str) -> None:
        """Leave the step's container (rm=false, or a failure without forcerm) when the build ends."""

    def add_layer(self, parent_id: str, doc: dict, fill: Callable[[str], None]) -> str:
        """`fill(root)` writes files into a mounted snapshot of `parent_id`; they become a new layer."""

    def mounted(self, image_id: str) -> AbstractContextManager[str]:
        """An image's root filesystem, mounted read-only for COPY --from."""

    def tag(self, image_id: str, names: tuple[str, ...]) -> None: ...


def go_quote(items) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(i) for i in items) + "]"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String() for the values a HEALTHCHECK takes."""
    if ns == 0:
        return "0s"
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    seconds = ns / 10**9
    hours, rest = divmod(int(seconds), 3600)
    minutes = rest // 60
    secs = f"{seconds - hours * 3600 - minutes * 60:g}s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def _go_healthcheck(check: dict) -> str:
    """dockerd's record of a HEALTHCHECK step: Go's %q of the *HealthConfig."""
    retries = check.get("Retries", 0)
    rune = f"'{chr(retries)}'" if 32 <= retries < 127 and chr(retries) not in "'\\" else f"'\\x{retries:02x}'"
    durations = " ".join(f'"{go_duration(check.get(key, 0))}"' for key in ("Interval", "Timeout", "StartPeriod"))
    return f"&{{{go_quote(check['Test'])} {durations} {rune}}}"


def parse_duration(text: str, what: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    units = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    if text == "0":
        return 0
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise InvalidArgument(f"invalid duration for {what}: {text!r}")
    return int(total)


@dataclass
class StageState:
    stage: Stage
    image_id: str = ""
    doc: dict = field(default_factory=dict)
    args: dict = field(default_factory=dict)      # declared ARGs and their values (None: no value)
    shell: list = field(default_factory=lambda: list(DEFAULT_SHELL))

    @property
    def config(self) -> dict:
        return self.doc.setdefault("config", {})

    def env(self) -> dict[str, str]:
        out = {k: v for k, v in self.args.items() if v is not None}
        for item in self.config.get("Env") or []:
            key, _, value = item.partition("=")
            out[key] = value
        return out


class Builder:
    def __init__(self, worker: BuildWorker, cache: BuildCache, context: BuildContext, options: BuildOptions,
                 emit: Callable[[dict], None], dockerfile_text: str | None = None):
        self.worker = worker
        self.cache = cache
        self.context = context
        self.options = options
        self._emit = emit
        text = dockerfile_text
        if text is None:
            raw = context.read_file(options.dockerfile or "Dockerfile")
            if raw is None:
                raise InvalidArgument(f"Cannot locate specified Dockerfile: {options.dockerfile or 'Dockerfile'}")
            text = raw.decode("utf-8", "replace")
            context.drop_build_files(options.dockerfile or "Dockerfile")
        self.dockerfile: Dockerfile = parse(text)
        for name in options.tags:  # a bad tag is refused before any step, as dockerd does
            _check_tag(name)
        self.stages = self.dockerfile.until(options.target)
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.results: dict[int, str] = {}
        self._in_triggers = False  # dockerd prints one " ---> id" for FROM and its triggers together
        self.step = 0
        self.total = len(self.dockerfile.meta_args) + sum(len(s.instructions) for s in self.stages) + \
            (1 if options.labels else 0)

    # -- output -------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if not self.options.quiet:
            self._emit({"stream": text})

    def _step(self, ins: Instruction) -> None:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {ins.original}")
        self.say("\n")

    # -- the build -------------------------------------------------------------------------------
    def build(self) -> str:
        for ins in self.dockerfile.meta_args:
            self._step(ins)
            for word in ins.args:
                name, sep, value = word.partition("=")
                value = expand(value, self._meta_env(), self.dockerfile.escape) if sep else None
                if name in self.options.build_args:
                    value = self.options.build_args[name]
                    self.used_args.add(name)
                self.meta_args[name] = value
        image_id = ""
        for stage in self.stages:
            image_id = self._build_stage(stage)
            self.results[stage.index] = image_id
        unused = sorted(set(self.options.build_args) - self.used_args - set(_BUILTIN_ARGS))
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        if self.options.tags:
            self.worker.tag(image_id, self.options.tags)
        if self.options.quiet:
            self._emit({"stream": image_id + "\n"})
            return image_id
        self._emit({"aux": {"ID": image_id}})
        self.say(f"Successfully built {image_id[7:19]}\n")
        for name in self.options.tags:
            self.say(f"Successfully tagged {_familiar(name)}\n")
        return image_id

    def _meta_env(self) -> dict[str, str]:
        return {k: v for k, v in self.meta_args.items() if v is not None}

    def _build_stage(self, stage: Stage) -> str:
        header, body = stage.instructions[0], stage.instructions[1:]
        self._step(header)
        base = expand(stage.base, self._meta_env(), self.dockerfile.escape)
        if not base:
            raise BuildFailed("base name (" + stage.base + ") should not be blank")
        state = StageState(stage)
        index = self.dockerfile.stage_index(base)
        if index is not None and index < stage.index and self.dockerfile.stages[index].name == base.lower():
            image_id = self.results[index]
            doc = copy.deepcopy(self.worker.image(image_id, False)[1])
        elif base.lower() == "scratch":
            image_id, doc = "", {"architecture": "amd64", "os": "linux", "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
        else:
            try:
                image_id, doc = self.worker.image(base, self.options.pull)
            except EngineError as err:
                raise BuildFailed(err.message) from None
            doc = copy.deepcopy(doc)
        state.image_id, state.doc = image_id, doc
        state.shell = list(state.config.get("Shell") or DEFAULT_SHELL)  # SHELL is part of the image
        triggers = list(state.config.get("OnBuild") or [])
        if triggers:
            state.config["OnBuild"] = []
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            self.say("\n")
            self._in_triggers = True
            try:
                for text in triggers:
                    self._dispatch(state, _parse_one(text, self.dockerfile.escape, header.line))
            finally:
                self._in_triggers = False
        if state.image_id:
            self.say(f" ---> {state.image_id[7:19]}\n")
        for ins in body:
            self._step(ins)
            self._dispatch(state, ins)
        if stage is self.stages[-1] and self.options.labels:
            # dockerd appends `--label`s to the Dockerfile as one more LABEL step
            text = "LABEL " + "".join(f"{json.dumps(k)}='{v}' " for k, v in sorted(self.options.labels.items()))
            self._step(Instruction("LABEL", (), original=text))
            labels = dict(state.config.get("Labels") or {})
            labels.update(self.options.labels)
            state.config["Labels"] = labels
            self._config_step(state, "LABEL " + " ".join(f"{k}={v}" for k, v in sorted(self.options.labels.items())))
        if not state.image_id:
            raise BuildFailed("No image was generated. Is your Dockerfile empty?")
        return state.image_id

    # -- one instruction -----------------------------------------------------------------------
    def _dispatch(self, state: StageState, ins: Instruction) -> None:
        handler = getattr(self, "_do_" + ins.cmd.lower(), None)
        if handler is None:
            raise BuildFailed(f"{ins.cmd} is not supported here")
        handler(state, ins)

    def _pairs(self, state: StageState, ins: Instruction) -> list[tuple[str, str]]:
        values = ins.args
        if len(values) % 2:
            raise BuildFailed(f"{ins.cmd} requires key=value pairs")
        env = state.env()
        out = []
        for i in range(0, len(values), 2):
            key = expand(values[i], env, self.dockerfile.escape)
            value = expand(values[i + 1], env, self.dockerfile.escape)
            out.append((key, value))
        return out

    @staticmethod
    def _nop(state: StageState, text: str, joined: bool = False) -> list[str]:
        """A config step's recorded command (dockerd's "#(nop) " marker, whatever the SHELL); dockerd
        joins the marker and the text into one word for some steps (WORKDIR, COPY)."""
        return [*DEFAULT_SHELL, "#(nop) " + text] if joined else [*DEFAULT_SHELL, "#(nop) ", text]

    def _config_step(self, state: StageState, text: str, fill: Callable[[str], None] | None = None) -> None:
        """A step recorded as "#(nop) <text>", cached by its text and resulting config: no layer (an
        empty_layer history entry), or with `fill`, a layer of what it writes into the root (WORKDIR)."""
        run_config = copy.deepcopy(state.config)
        run_config["Cmd"] = self._nop(state, text, joined=fill is not None)
        created_by = " ".join(run_config["Cmd"])
        doc = self._next_doc(state, run_config, created_by, empty_layer=fill is None)
        if self._probe(state, created_by, doc):
            return
        container = os.urandom(6).hex()  # dockerd runs a container for the step; it changes nothing
        self.say(f" ---> Running in {container}\n")
        if fill is None:
            image_id = self.worker.store_config(state.image_id, doc)
        else:
            image_id = self.worker.add_layer(state.image_id, doc, fill)
        if self.options.remove or self.options.force_remove:
            self.say(f"Removing intermediate container {container}\n")
        self._done(state, created_by, doc, image_id)

    def _next_doc(self, state: StageState, run_config: dict, created_by: str, empty_layer: bool) -> dict:
        from ..images.rootfs import DOCKER_VERSION, now_rfc3339

        doc = copy.deepcopy(state.doc)
        created = now_rfc3339()
        doc.update({"created": created, "container_config": run_config, "docker_version": DOCKER_VERSION,
                    "architecture": doc.get("architecture") or "amd64", "os": doc.get("os") or "linux"})
        doc.pop("container", None)
        doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        entry = {"created": created, "created_by": created_by}
        if empty_layer:
            entry["empty_layer"] = True
        doc["history"] = list(doc.get("history") or []) + [entry]
        if "config" in doc:
            doc["config"]["Image"] = state.image_id
        return doc

    def _key(self, state: StageState, created_by: str, doc: dict) -> str:
        config = json.dumps(doc.get("config"), sort_keys=True).encode()
        return cache_key(state.image_id, created_by, config)

    def _probe(self, state: StageState, created_by: str, doc: dict) -> bool:
        if self.options.no_cache:
            return False
        found = self.cache.get(self._key(state, created_by, doc))
        if not found or not self.worker.exists(found):
            return False
        self.say(" ---> Using cache\n")
        state.image_id = found
        state.doc = copy.deepcopy(self.worker.image(found, False)[1])
        if not self._in_triggers:
            self.say(f" ---> {found[7:19]}\n")
        return True

    def _done(self, state: StageState, created_by: str, doc: dict, image_id: str) -> None:
        self.cache.put(self._key(state, created_by, doc), image_id)
        state.image_id = image_id
        state.doc = copy.deepcopy(self.worker.image(image_id, False)[1])
        if not self._in_triggers:
            self.say(f" ---> {image_id[7:19]}\n")

    # -- config-only instructions ------------------------------------------------------------------
    def _do_env(self, state: StageState, ins: Instruction) -> None:
        pairs = self._pairs(state, ins)
        env = list(state.config.get("Env") or [])
        for key, value in pairs:
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
        state.config["Env"] = env
        self._config_step(state, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    def _do_label(self, state: StageState, ins: Instruction) -> None:
        pairs = self._pairs(state, ins)
        labels = dict(state.config.get("Labels") or {})
        labels.update(pairs)
        state.config["Labels"] = labels
        self._config_step(state, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    def _do_maintainer(self, state: StageState, ins: Instruction) -> None:
        author = expand(ins.args[0], state.env(), self.dockerfile.escape)
        state.doc["author"] = author
        self._config_step(state, "MAINTAINER " + author)

    def _command(self, state: StageState, ins: Instruction) -> list[str]:
        if ins.json:
            return list(ins.args)
        text = ins.args[0] if ins.args else ""
        return [*state.shell, text] if text else []

    def _do_cmd(self, state: StageState, ins: Instruction) -> None:
        cmd = self._command(state, ins)
        state.config["Cmd"] = cmd
        self._config_step(state, f"CMD {go_quote(cmd)}")

    def _do_entrypoint(self, state: StageState, ins: Instruction) -> None:
        entrypoint = self._command(state, ins)
        state.config["Entrypoint"] = entrypoint or None
        if not ins.json:
            state.config["Cmd"] = None  # a shell-form ENTRYPOINT ignores CMD, as dockerd records it
        self._config_step(state, f"ENTRYPOINT {go_quote(entrypoint)}")

    def _do_workdir(self, state: StageState, ins: Instruction) -> None:
        path = expand(ins.args[0], state.env(), self.dockerfile.escape)
        current = state.config.get("WorkingDir") or "/"
        target = posixpath.normpath(posixpath.join(current, path))
        state.config["WorkingDir"] = target

        # dockerd makes the directory in the step's container and commits it as a layer
        def fill(root: str) -> None:
            os.makedirs(within_root(root, target), 0o755, exist_ok=True)

        self._config_step(state, f"WORKDIR {target}", fill)

    def _do_user(self, state: StageState, ins: Instruction) -> None:
        user = expand(ins.args[0], state.env(), self.dockerfile.escape)
        state.config["User"] = user
        self._config_step(state, f"USER {user}")

    def _do_expose(self, state: StageState, ins: Instruction) -> None:
        from ..images.changes import _expand_ports

        ports = dict(state.config.get("ExposedPorts") or {})
        words = []
        for word in ins.args:
            for spec in expand_words(word, state.env(), self.dockerfile.escape):
                words.append(spec)
                try:
                    for port in _expand_ports(spec):
                        ports[port] = {}
                except InvalidArgument as err:
                    raise BuildFailed(err.message) from None
        state.config["ExposedPorts"] = ports
        self._config_step(state, "EXPOSE " + " ".join(sorted(words)))

    def _do_volume(self, state: StageState, ins: Instruction) -> None:
        volumes = dict(state.config.get("Volumes") or {})
        paths = list(ins.args) if ins.json else [
            p for word in ins.args for p in expand_words(word, state.env(), self.dockerfile.escape)]
        for path in paths:
            if not path.strip():
                raise BuildFailed("VOLUME specified can not be an empty string")
            volumes[path] = {}
        state.config["Volumes"] = volumes
        self._config_step(state, "VOLUME [" + " ".join(paths) + "]")

    def _do_stopsignal(self, state: StageState, ins: Instruction) -> None:
        sig = expand(ins.args[0], state.env(), self.dockerfile.escape)
        state.config["StopSignal"] = sig
        self._config_step(state, f"STOPSIGNAL {sig}")

    def _do_shell(self, state: StageState, ins: Instruction) -> None:
        if not ins.args:
            raise BuildFailed("SHELL requires at least one argument")
        state.shell = list(ins.args)
        state.config["Shell"] = list(ins.args)
        self._config_step(state, "SHELL [" + " ".join(ins.args) + "]")

    def _do_onbuild(self, state: StageState, ins: Instruction) -> None:
        body = ins.original.strip()[len("ONBUILD"):].strip()
        state.config["OnBuild"] = list(state.config.get("OnBuild") or []) + [body]
        self._config_step(state, f"ONBUILD {body}")

    def _do_healthcheck(self, state: StageState, ins: Instruction) -> None:
        kind = ins.args[0].upper()
        if kind == "NONE":
            if len(ins.args) > 1:
                raise BuildFailed("HEALTHCHECK NONE takes no arguments")
            check = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = list(ins.args[1:])
            if not rest or rest == [""]:
                raise BuildFailed("Missing command after HEALTHCHECK CMD")
            check = {"Test": ["CMD", *rest] if ins.json else ["CMD-SHELL", rest[0]]}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                value = ins.flag(flag)
                if value:
                    check[key] = parse_duration(value, flag)
            retries = ins.flag("retries")
            if retries:
                try:
                    check["Retries"] = int(retries)
                except ValueError:
                    raise BuildFailed(f"invalid retries: {retries}") from None
        else:
            raise BuildFailed(f'Unknown type "{ins.args[0]}" in HEALTHCHECK (try CMD)')
        state.config["Healthcheck"] = check
        self._config_step(state, "HEALTHCHECK " + _go_healthcheck(check))

    def _do_arg(self, state: StageState, ins: Instruction) -> None:
        shown = []
        for word in ins.args:
            name, sep, default = word.partition("=")
            value: str | None = expand(default, state.env(), self.dockerfile.escape) if sep else None
            if not sep and name in self.meta_args:
                value = self.meta_args[name]
            if name in self.options.build_args:
                value = self.options.build_args[name]
                self.used_args.add(name)
            state.args[name] = value
            shown.append(f"{name}={value}" if value is not None else name)
        self._config_step(state, "ARG " + " ".join(shown))

    # -- RUN -----------------------------------------------------------------------------------
    def _do_run(self, state: StageState, ins: Instruction) -> None:
        cmd = list(ins.args) if ins.json else [*state.shell, ins.args[0] if ins.args else ""]
        # Build args the RUN sees (declared in the stage, given a value, not shadowed by ENV): in its
        # environment, and in the recorded command ("|1 WHO=me /bin/sh -c …"), never in the image's Env.
        env_names = {e.partition("=")[0] for e in state.config.get("Env") or []}
        args = [(k, v) for k, v in sorted(state.args.items()) if v is not None and k not in env_names]
        saved = [f"|{len(args)}", *(f"{k}={v}" for k, v in args), *cmd] if args else cmd
        created_by = " ".join(saved)
        doc = self._next_doc(state, dict(copy.deepcopy(state.config), Cmd=saved), created_by, empty_layer=False)
        if self._probe(state, created_by, doc):
            return
        run_config = copy.deepcopy(state.config)
        run_config["Cmd"] = cmd
        run_config["Env"] = list(run_config.get("Env") or []) + [f"{k}={v}" for k, v in args]
        run_config["Entrypoint"] = []  # "[]": the image's ENTRYPOINT does not wrap a RUN
        run_config.pop("Healthcheck", None)
        run_config.pop("Shell", None)
        container_id, code = self.worker.run(
            state.image_id, run_config, self.options.host_config,
            lambda cid: self.say(f" ---> Running in {cid[:12]}\n"),
            lambda data: self.say(data.decode("utf-8", "replace")))
        if code != 0:
            # dockerd keeps a failed step's container unless --force-rm
            if self.options.force_remove:
                self.worker.remove_container(container_id)
            else:
                self.worker.keep_container(container_id)
            raise BuildFailed(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code)
        image_id = self.worker.commit_container(container_id, state.image_id, doc)
        if self.options.remove or self.options.force_remove:
            self.worker.remove_container(container_id)
            self.say(f"Removing intermediate container {container_id[:12]}\n")
        else:
            self.worker.keep_container(container_id)
        self._done(state, created_by, doc, image_id)

    # -- COPY and ADD -------------------------------------------------------------------------------
    def _do_copy(self, state: StageState, ins: Instruction) -> None:
        self._copy(state, ins, add=False)

    def _do_add(self, state: StageState, ins: Instruction) -> None:
        self._copy(state, ins, add=True)

    def _copy(self, state: StageState, ins: Instruction, add: bool) -> None:
        env = state.env()
        words = list(ins.args) if ins.json else [expand(w, env, self.dockerfile.escape) for w in ins.args]
        sources, dest = words[:-1], words[-1]
        chown = ins.flag("chown")
        chown = expand(chown, env, self.dockerfile.escape) if chown else None
        chmod = ins.flag("chmod")
        mode = None
        if chmod:
            try:
                mode = int(chmod, 8)
            except ValueError:
                raise BuildFailed(f"invalid chmod parameter: {chmod}") from None
        from_ = ins.flag("from")
        if add:
            for src in sources:
                if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", src) or src.startswith("git@"):
                    raise BuildFailed(f"ADD {src}: fetching remote sources is not supported by this engine "
                                      f"(no internet access here): download it into the build context and ADD "
                                      f"the local file")
        workdir = state.config.get("WorkingDir") or "/"
        # relative to WORKDIR, cleaned; a trailing slash (or ".") says "into this directory"
        dest_abs = posixpath.normpath(posixpath.join(workdir, dest))
        if dest.endswith("/") or dest in (".", "./"):
            dest_abs = dest_abs.rstrip("/") + "/"
        if from_:
            from_ = expand(from_, env, self.dockerfile.escape)
            self._copy_from(state, ins, from_, sources, dest_abs, chown, mode)
            return
        try:
            paths = [p for src in sources for p in self.context.sources(src)]
        except EngineError as err:
            raise BuildFailed(err.message) from None
        kind = "file" if len(paths) == 1 and not os.path.isdir(paths[0]) else \
            "dir" if len(paths) == 1 else "multi"
        digest = checksum(paths)
        self._copy_step(state, ins, paths, f"{kind}:{digest}", dest_abs, chown, mode, add, multi=len(paths) > 1)

    def _copy_from(self, state: StageState, ins: Instruction, from_: str, sources: list[str], dest_abs: str,
                   chown, mode) -> None:
        index = self.dockerfile.stage_index(from_)
        if index is not None and index < state.stage.index and index in self.results:
            image_id = self.results[index]
        elif index is not None and index >= state.stage.index:
            raise BuildFailed(f"invalid from flag value {from_}: refers to current or later build stage")
        else:
            try:
                image_id = self.worker.image(from_, False)[0]
            except EngineError as err:
                raise BuildFailed(err.message) from None
        with self.worker.mounted(image_id) as root:
            paths = []
            for src in sources:
                path = within_root(root, src)
                if not os.path.lexists(path):
                    raise BuildFailed(f"COPY failed: stat {src}: file does not exist")
                paths.append(path)
            digest = checksum(paths)
            self._copy_step(state, ins, paths, f"{'dir' if os.path.isdir(paths[0]) else 'file'}:{digest}",
                            dest_abs, chown, mode, add=False, multi=len(paths) > 1)

    def _copy_step(self, state: StageState, ins: Instruction, paths: list[str], what: str, dest_abs: str,
                   chown, mode, add: bool, multi: bool) -> None:
        if multi and not dest_abs.endswith("/"):
            raise BuildFailed(f"When using {ins.cmd} with more than one source file, the destination must be a "
                              f"directory and end with a /")
        created_by = f"/bin/sh -c #(nop) {ins.cmd} {what} in {dest_abs} "
        run_config = copy.deepcopy(state.config)
        run_config["Cmd"] = [*DEFAULT_SHELL, f"#(nop) {ins.cmd} {what} in {dest_abs} "]
        doc = self._next_doc(state, run_config, created_by, empty_layer=False)
        key_text = created_by + f"|chown={chown}|chmod={mode}"
        if self._probe(state, key_text, doc):
            return

        def fill(root: str) -> None:
            try:
                uid, gid = owner(root, chown)
            except InvalidArgument as err:
                raise BuildFailed(err.message) from None
            for path in paths:
                copy_into(root, path, dest_abs, uid, gid, mode, add)

        image_id = self.worker.add_layer(state.image_id, doc, fill)
        self._done(state, key_text, doc, image_id)


_BUILTIN_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                 "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


def _check_tag(name: str) -> None:
    from ..images.reference import parse as parse_ref

    try:
        ref = parse_ref(name)
    except InvalidArgument:
        raise InvalidArgument(f"invalid reference format: {name}") from None
    if ref.digest is not None:
        raise InvalidArgument(f"invalid reference format: {name} (a build's tag cannot name a digest)")


def _familiar(name: str) -> str:
    from ..images.reference import parse as parse_ref

    try:
        return parse_ref(name).with_default_tag().familiar()
    except InvalidArgument:
        return name


def run_build(worker: BuildWorker, cache: BuildCache, context: BuildContext, options: BuildOptions,
              emit: Callable[[dict], None]) -> str:
    """Parse, build, tag; returns the image ID.  Failures raise BuildFailed / InvalidArgument."""
    return Builder(worker, cache, context, options, emit).build()

