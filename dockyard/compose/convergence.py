"""Make the engine match a project, through the Engine API only (`EngineClient`).

    up:     networks, volumes (created when missing) -> images (pulled when missing)
            -> per service, in dependency order: remove extra replicas, recreate the
               containers whose config hash or image changed, create the missing ones
            -> start, in dependency order (waiting for service_completed_successfully
               and service_healthy)
    down:   stop + remove the containers (orphans with --remove-orphans), then the
            project's networks, and with -v its volumes and the containers' anonymous ones

Objects are found again by their labels (`com.docker.compose.project` …), as
compose does, so containers made by docker compose v2 are ours too. Each step
is reported as compose words it ("Container p-web-1", "Created") through
`report(resource, status)`; what needs a person's attention goes to `warn`.
"""

from __future__ import annotations

import threading

from dockyard.client.api import ApiError, EngineClient, quote
from dockyard.compose import model, spec
from dockyard.compose.interpolation import ComposeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    Report = Callable[[str, str], None]


def container_resource(name: str) -> str:
    return f"Container {name}"


def summary_name(summary: dict[str, Any]) -> str:
    names = summary.get("Names") or [""]
    return names[0].lstrip("/")


def summary_number(summary: dict[str, Any]) -> int:
    try:
        return int((summary.get("Labels") or {}).get(model.NUMBER_LABEL, "0"))
    except ValueError:
        return 0


def summary_service(summary: dict[str, Any]) -> str:
    return (summary.get("Labels") or {}).get(model.SERVICE_LABEL, "")


def parallel(client: EngineClient, items: list[Any], work: Callable[[EngineClient, Any], None],
             connect: Callable[[], EngineClient] | None = None) -> None:
    """`work(client, item)` for every item at once, each on a connection of its own (`connect()`;
    stops take one timeout, not one each); the first failure is raised after all have ended."""
    if len(items) < 2:
        for item in items:
            work(client, item)
        return
    failures: list[BaseException] = []

    def run(item: Any) -> None:
        own = connect() if connect is not None else EngineClient(client.host)
        try:
            work(own, item)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failures.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=run, args=(item,), daemon=True) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


class Compose:
    def __init__(self, client: EngineClient, project: model.Project, report: Report | None = None,
                 warn: Callable[[str], None] | None = None, connect: Callable[[], EngineClient] | None = None):
        """`connect()` gives a client of its own to each of the calls made at once (by default a new
        EngineClient for the same engine)."""
        self.client = client
        self.connect = connect
        self.project = project
        self.report = report or (lambda resource, status: None)
        self.warn = warn or (lambda message: None)
        self._networks_supported: bool | None = None
        self._lock = threading.Lock()

    def _say(self, resource: str, status: str) -> None:
        with self._lock:
            self.report(resource, status)

    # --- what exists ----------------------------------------------------------------------------------

    def containers(self, services: Iterable[str] | None = None, all: bool = True,
                   oneoff: bool = False) -> list[dict[str, Any]]:
        """The project's containers (summaries of GET /containers/json), by service then number."""
        found = self.client.containers(all=all, filters=spec.project_filter(self.project.name, oneoff=oneoff))
        if services is not None:
            wanted = set(services)
            found = [c for c in found if summary_service(c) in wanted]
        return sorted(found, key=lambda c: (summary_service(c), summary_number(c), summary_name(c)))

    def orphans(self) -> list[dict[str, Any]]:
        return [c for c in self.containers() if summary_service(c) not in self.project.services]

    def networks_supported(self) -> bool:
        """Whether the engine serves user-defined networks (GET /networks answers)."""
        if self._networks_supported is None:
            try:
                self.client.get_json("/networks")
                self._networks_supported = True
            except ApiError as exc:
                if exc.status not in (404, 501):
                    raise
                self._networks_supported = False
        return self._networks_supported

    def _network(self, name: str) -> dict[str, Any] | None:
        try:
            return self.client.get_json(f"/networks/{quote(name)}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _volume(self, name: str) -> dict[str, Any] | None:
        try:
            return self.client.volume_inspect(name)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    # --- networks and volumes ---------------------------------------------------------------------------

    def used_networks(self, services: list[model.Service]) -> list[str]:
        keys = {a.network for s in services if not s.network_mode for a in s.networks}
        return sorted(keys)

    def used_volumes(self, services: list[model.Service]) -> list[str]:
        keys = {m.source for s in services for m in s.volumes if m.type == "volume" and m.source}
        return sorted(keys)

    def ensure_networks(self, services: list[model.Service]) -> None:
        keys = self.used_networks(services)
        if not keys:
            return
        if not self.networks_supported():
            self.warn("the engine does not serve networks yet: services run on its default network, "
                      "without name resolution between them")
            return
        for key in keys:
            net = self.project.networks[key]
            found = self._network(net.name)
            if net.external:
                if found is None:
                    raise ComposeError(f"network {net.name} declared as external, but could not be found")
                continue
            if found is not None:
                labels = found.get("Labels") or {}
                if labels.get(model.PROJECT_LABEL) != self.project.name:
                    self.warn(f"a network with name {net.name} exists but was not created for project "
                              f'"{self.project.name}".\nSet `external: true` to use an existing network')
                continue
            resource = f"Network {net.name}"
            self._say(resource, "Creating")
            try:
                self.client.post_json("/networks/create", None, spec.network_create_body(self.project, key))
            except ApiError as exc:
                if exc.status != 409:  # made meanwhile by someone else: use it
                    raise
            self._say(resource, "Created")

    def ensure_volumes(self, services: list[model.Service]) -> None:
        for key in self.used_volumes(services):
            vol = self.project.volumes[key]
            found = self._volume(vol.name)
            if vol.external:
                if found is None:
                    raise ComposeError(f'external volume "{vol.name}" not found')
                continue
            if found is not None:
                labels = found.get("Labels") or {}
                if labels.get(model.PROJECT_LABEL) != self.project.name:
                    self.warn(f"volume \"{vol.name}\" already exists but was not created by Docker Compose. "
                              "Use `external: true` to use an existing volume")
                continue
            resource = f'Volume "{vol.name}"'
            self._say(resource, "Creating")
            self.client.volume_create(spec.volume_create_body(self.project, key))
            self._say(resource, "Created")

    # --- images ---------------------------------------------------------------------------------------------

    def image_ids(self, services: list[model.Service], pull_missing: bool = True) -> dict[str, str]:
        """service -> the ID of its image, pulling those that are missing."""
        ids: dict[str, str] = {}
        for service in services:
            try:
                ids[service.name] = self.client.image_inspect(service.image).get("Id", "")
                continue
            except ApiError as exc:
                if exc.status != 404 or not pull_missing:
                    raise
            self.pull([service])
            ids[service.name] = self.client.image_inspect(service.image).get("Id", "")
        return ids

    def pull(self, services: list[model.Service], ignore_failures: bool = False) -> list[str]:
        """Pull each service's image; the failures (when ignored) as messages."""
        failed = []
        for service in services:
            resource = service.name
            self._say(resource, "Pulling")
            name, tag = _split_reference(service.image)
            try:
                for message in self.client.image_pull(name, tag):
                    if message.get("error"):
                        raise ApiError(500, message.get("error") or "")
            except ApiError as exc:
                self._say(resource, "Error")
                if not ignore_failures:
                    raise
                failed.append(f"{service.name}: {exc.message}")
                continue
            self._say(resource, "Pulled")
        return failed

    # --- containers: create -----------------------------------------------------------------------------------

    def create(self, services: list[model.Service], force_recreate: bool = False, no_recreate: bool = False,
               remove_orphans: bool = False) -> None:
        """Networks, volumes, images, then each service's containers made to match (not started)."""
        orphans = self.orphans()
        if orphans and remove_orphans:
            self._remove(orphans, volumes=False)
        elif orphans:
            names = ", ".join(summary_name(c) for c in orphans)
            self.warn(f"Found orphan containers ([{names}]) for this project. If you removed or renamed this "
                      "service in your compose file, you can run this command with the --remove-orphans flag "
                      "to clean it up.")
        self.ensure_networks(services)
        self.ensure_volumes(services)
        images = self.image_ids(services)
        for service in services:
            self._converge(service, images.get(service.name, ""), force_recreate, no_recreate)

    def _converge(self, service: model.Service, image_id: str, force_recreate: bool, no_recreate: bool) -> None:
        existing = self.containers([service.name])
        wanted = service.scale
        # extra replicas go first, highest numbers first
        extra = sorted(existing, key=summary_number)[wanted:] if len(existing) > wanted else []
        if extra:
            self._remove(list(reversed(extra)), volumes=False)
        keep = [c for c in existing if c not in extra]
        digest = spec.config_hash(service)
        for summary in keep:
            labels = summary.get("Labels") or {}
            stale = labels.get(model.HASH_LABEL) != digest or (image_id and summary.get("ImageID")
                                                                and summary.get("ImageID") != image_id)
            if (stale or force_recreate) and not no_recreate:
                self._recreate(service, summary, image_id)
        numbers = {summary_number(c) for c in keep}
        number = 1
        while len(numbers) < wanted:
            while number in numbers:
                number += 1
            self._create(service, number, image_id)
            numbers.add(number)

    def _network_mode(self, service: model.Service) -> str | None:
        if not service.network_mode.startswith("service:"):
            return None
        other = service.network_mode[len("service:"):]
        found = self.containers([other])
        if not found:
            raise ComposeError(f'service "{service.name}" uses the network stack of service "{other}", which has '
                               "no container")
        return f"container:{found[0]['Id']}"

    def _create(self, service: model.Service, number: int, image_id: str,
                inherited: dict[str, str] | None = None, announce: bool = True) -> str:
        name = model.container_name(self.project.name, service, number)
        resource = container_resource(name)
        if announce:
            self._say(resource, "Creating")
        supported = True if service.network_mode else self.networks_supported()
        body = spec.create_body(self.project, service, number, image_id=image_id, inherited=inherited,
                                network_mode=self._network_mode(service), networks_supported=supported)
        created = self.client.container_create(body, name=name)
        cid = created.get("Id", "")
        for warning in created.get("Warnings") or []:
            self.warn(warning)
        if not service.network_mode and supported:
            for attachment in spec.networks_by_priority(service)[1:]:
                net = self.project.networks[attachment.network].name
                self.client.post_json(f"/networks/{quote(net)}/connect", None, {
                    "Container": cid, "EndpointConfig": spec.endpoint_config(self.project, service, number,
                                                                              attachment)})
        if announce:
            self._say(resource, "Created")
        return cid

    def _recreate(self, service: model.Service, old: dict[str, Any], image_id: str) -> None:
        name = summary_name(old)
        resource = container_resource(name)
        self._say(resource, "Recreate")
        self.client.container_stop(old["Id"], spec.stop_timeout(service))
        inherited = {m.get("Destination", ""): m.get("Name", "") for m in old.get("Mounts") or []
                     if m.get("Type") == "volume" and m.get("Name")}
        anonymous = {m.target for m in service.volumes if m.type == "volume" and not m.source}
        inherited = {target: vol for target, vol in inherited.items() if target in anonymous}
        self.client.container_rename(old["Id"], f"{old['Id'][:12]}_{name}")
        try:
            self._create(service, summary_number(old), image_id, inherited, announce=False)
        except BaseException:
            self.client.container_rename(old["Id"], name)  # leave things as they were
            raise
        self.client.container_remove(old["Id"], volumes=False)
        self._say(resource, "Recreated")

    # --- containers: start, stop, remove ------------------------------------------------------------------------

    def start(self, services: list[model.Service], wait_dependencies: bool = True) -> None:
        """Start each service's containers, dependencies first (those already running are left alone)."""
        for service in services:
            if wait_dependencies:
                self._wait_dependencies(service, services)
            for summary in self.containers([service.name]):
                name = summary_name(summary)
                resource = container_resource(name)
                if summary.get("State") == "running":
                    self._say(resource, "Running")
                    continue
                self._say(resource, "Starting")
                self.client.container_start(summary["Id"])
                self._say(resource, "Started")

    def _wait_dependencies(self, service: model.Service, selected: list[model.Service]) -> None:
        chosen = {s.name for s in selected}
        for dep in service.depends_on:
            if dep.service not in chosen:
                continue
            if dep.condition == "service_healthy":
                self._wait_healthy(dep.service)
                continue
            if dep.condition != "service_completed_successfully":
                continue
            for summary in self.containers([dep.service]):
                resource = container_resource(summary_name(summary))
                self._say(resource, "Waiting")
                waiting = self.client.container_wait(summary["Id"])
                result = self.client.wait_result(waiting)
                code = int(result.get("StatusCode", 0))
                if code != 0:
                    self._say(resource, "Error")
                    raise ComposeError(f'service "{dep.service}" didn\'t complete successfully: exit {code}')
                self._say(resource, "Exited")

    def _wait_healthy(self, service: str, deadline: float = 600.0) -> None:
        """compose's service_healthy: every container of the service reports healthy (an unhealthy one, or
        one without a check, is an error)."""
        import time

        for summary in self.containers([service]):
            name = summary_name(summary)
            resource = container_resource(name)
            self._say(resource, "Waiting")
            end = time.monotonic() + deadline
            while True:
                state = self.client.container_inspect(summary["Id"]).get("State") or {}
                status = (state.get("Health") or {}).get("Status")
                if status == "healthy":
                    self._say(resource, "Healthy")
                    break
                if status is None:
                    raise ComposeError(f"container {name} has no healthcheck configured")
                if status == "unhealthy" or not state.get("Running"):
                    self._say(resource, "Error")
                    raise ComposeError(f"dependency failed to start: container {name} is unhealthy")
                if time.monotonic() > end:
                    raise ComposeError(f"container {name} did not become healthy in {int(deadline)}s")
                time.sleep(0.1)

    def stop(self, summaries: list[dict[str, Any]], timeout: int | None = None) -> None:
        """Stop containers, dependents before what they depend on, each level at once."""
        for level in self._reverse_levels(summaries):
            running = [c for c in level if c.get("State") in ("running", "restarting", "paused")]

            def stop_one(client: EngineClient, summary: dict[str, Any]) -> None:
                resource = container_resource(summary_name(summary))
                self._say(resource, "Stopping")
                service = self.project.services.get(summary_service(summary))
                wait = timeout if timeout is not None else (spec.stop_timeout(service) if service else None)
                client.container_stop(summary["Id"], wait)
                self._say(resource, "Stopped")

            parallel(self.client, running, stop_one, self.connect)

    def _reverse_levels(self, summaries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Containers grouped by their service's place in the start order, last started first;
        containers of services the file no longer has (orphans) come first of all."""
        order = {name: i for i, name in enumerate(model.start_order(self.project.services))}
        groups: dict[int, list[dict[str, Any]]] = {}
        for summary in summaries:
            groups.setdefault(order.get(summary_service(summary), len(order)), []).append(summary)
        return [groups[i] for i in sorted(groups, reverse=True)]

    def _remove(self, summaries: list[dict[str, Any]], volumes: bool, stop: bool = True) -> None:
        if stop:
            self.stop(summaries)

        def remove_one(client: EngineClient, summary: dict[str, Any]) -> None:
            resource = container_resource(summary_name(summary))
            self._say(resource, "Removing")
            client.container_remove(summary["Id"], force=True, volumes=volumes)
            self._say(resource, "Removed")

        parallel(self.client, summaries, remove_one, self.connect)

    def remove(self, summaries: list[dict[str, Any]], volumes: bool = False, stop: bool = False) -> None:
        self._remove(summaries, volumes, stop)

    def restart(self, summaries: list[dict[str, Any]], timeout: int | None = None) -> None:
        for level in reversed(self._reverse_levels(summaries)):
            def restart_one(client: EngineClient, summary: dict[str, Any]) -> None:
                resource = container_resource(summary_name(summary))
                self._say(resource, "Restarting")
                service = self.project.services.get(summary_service(summary))
                wait = timeout if timeout is not None else (spec.stop_timeout(service) if service else None)
                client.container_restart(summary["Id"], wait)
                self._say(resource, "Started")

            parallel(self.client, level, restart_one, self.connect)

    # --- down -----------------------------------------------------------------------------------------------------

    def down(self, remove_orphans: bool = False, volumes: bool = False, timeout: int | None = None) -> bool:
        """Everything `up` made goes (volumes only with `volumes`); False when there was nothing."""
        did = False
        summaries = self.containers()
        if not remove_orphans:
            orphans = [c for c in summaries if summary_service(c) not in self.project.services]
            summaries = [c for c in summaries if c not in orphans]
            if orphans:
                names = ", ".join(summary_name(c) for c in orphans)
                self.warn(f"Found orphan containers ([{names}]) for this project. If you removed or renamed this "
                          "service in your compose file, you can run this command with the --remove-orphans flag "
                          "to clean it up.")
        if summaries:
            did = True
            self.stop(summaries, timeout)
            self._remove(summaries, volumes=volumes, stop=False)
        if self.networks_supported():
            for _key, net in sorted(self.project.networks.items()):
                if net.external:
                    continue
                found = self._network(net.name)
                if found is None or (found.get("Labels") or {}).get(model.PROJECT_LABEL) != self.project.name:
                    continue
                did = True
                resource = f"Network {net.name}"
                self._say(resource, "Removing")
                try:
                    self.client.request("DELETE", f"/networks/{quote(net.name)}").read()
                except ApiError as exc:
                    self._say(resource, "Error")
                    self.warn(f"network {net.name}: {exc.message}")
                    continue
                self._say(resource, "Removed")
        if volumes:
            for _key, vol in sorted(self.project.volumes.items()):
                if vol.external:
                    continue
                found = self._volume(vol.name)
                if found is None or (found.get("Labels") or {}).get(model.PROJECT_LABEL) != self.project.name:
                    continue
                did = True
                resource = f'Volume "{vol.name}"'
                self._say(resource, "Removing")
                try:
                    self.client.volume_remove(vol.name)
                except ApiError as exc:
                    self._say(resource, "Error")
                    self.warn(f"volume {vol.name}: {exc.message}")
                    continue
                self._say(resource, "Removed")
        return did


def _split_reference(image: str) -> tuple[str, str]:
    """`host:5000/repo:tag` -> (`host:5000/repo`, `tag`); a digest stays whole; no tag -> latest."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:]
    return image, "latest"
