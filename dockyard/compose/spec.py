"""A service as Engine API bodies (pure): container create, its labels and config hash, networks, volumes.

    service web, number 1, project p  ->  POST /containers/create?name=p-web-1
        Config: Image, Cmd, Env, Labels (com.docker.compose.*), ExposedPorts…
        HostConfig: Binds (short-syntax binds), Mounts (volumes, long binds, tmpfs),
                    PortBindings, NetworkMode (the first network's engine name)…
        NetworkingConfig.EndpointsConfig: that network, aliases [p-web-1, web, …]
      the other networks: POST /networks/{name}/connect after the create

The config hash is sha256 over the service's canonical form less what does
not need a new container (scale, replicas, depends_on): a change of
anything else recreates the container.
"""

from __future__ import annotations

import hashlib
import json

from dockyard.compose import model

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def config_hash(service: model.Service) -> str:
    canonical = {k: v for k, v in service.canonical.items() if k not in ("scale", "depends_on")}
    deploy = {k: v for k, v in (canonical.pop("deploy", None) or {}).items() if k != "replicas"}
    if deploy:
        canonical["deploy"] = deploy
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def project_filter(project: str, service: str | None = None, oneoff: bool = False) -> dict[str, list[str]]:
    """Label filters for `GET /containers/json` (every label must match)."""
    labels = [f"{model.PROJECT_LABEL}={project}", f"{model.ONEOFF_LABEL}={'True' if oneoff else 'False'}"]
    if service is not None:
        labels.append(f"{model.SERVICE_LABEL}={service}")
    return {"label": labels}


def container_labels(project: model.Project, service: model.Service, number: int,
                     image_id: str = "") -> dict[str, str]:
    labels = dict(service.labels)
    labels.update({
        model.PROJECT_LABEL: project.name,
        model.SERVICE_LABEL: service.name,
        model.NUMBER_LABEL: str(number),
        model.ONEOFF_LABEL: "False",
        model.HASH_LABEL: config_hash(service),
        model.WORKING_DIR_LABEL: project.working_dir,
        model.CONFIG_FILES_LABEL: ",".join(project.config_files),
        model.VERSION_LABEL: model.COMPOSE_VERSION,
        model.DEPENDS_ON_LABEL: ",".join(f"{d.service}:{d.condition}:{'true' if d.required else 'false'}"
                                         for d in service.depends_on),
    })
    if image_id:
        labels[model.IMAGE_LABEL] = image_id
    return labels


def _resource_labels(project: model.Project, own: tuple[tuple[str, str], ...], label: str,
                     key: str) -> dict[str, str]:
    labels = dict(own)
    labels.update({model.PROJECT_LABEL: project.name, label: key, model.VERSION_LABEL: model.COMPOSE_VERSION})
    return labels


def network_create_body(project: model.Project, key: str) -> dict[str, Any]:
    net = project.networks[key]
    labels = _resource_labels(project, net.labels, model.NETWORK_LABEL, key)
    body: dict[str, Any] = {"Name": net.name, "CheckDuplicate": True, "Labels": labels,
                            "Driver": net.driver or "bridge", "Options": dict(net.driver_opts),
                            "Internal": net.internal, "Attachable": net.attachable, "EnableIPv6": net.enable_ipv6}
    if net.ipam_driver or net.ipam_config:
        keys = {"subnet": "Subnet", "gateway": "Gateway", "ip_range": "IPRange"}
        body["IPAM"] = {"Driver": net.ipam_driver or "default",
                        "Config": [{keys[k]: v for k, v in entry} for entry in net.ipam_config]}
    return body


def volume_create_body(project: model.Project, key: str) -> dict[str, Any]:
    vol = project.volumes[key]
    labels = _resource_labels(project, vol.labels, model.VOLUME_LABEL, key)
    return {"Name": vol.name, "Driver": vol.driver or "local", "DriverOpts": dict(vol.driver_opts),
            "Labels": labels}


def networks_by_priority(service: model.Service) -> list[model.Attachment]:
    """compose's order: higher priority first, then by name; the first is the primary network."""
    return sorted(service.networks, key=lambda a: (-a.priority, a.network))


def endpoint_config(project: model.Project, service: model.Service, number: int,
                    attachment: model.Attachment) -> dict[str, Any]:
    aliases = [model.container_name(project.name, service, number), service.name]
    aliases += [a for a in attachment.aliases if a not in aliases]
    endpoint: dict[str, Any] = {"Aliases": aliases}
    if attachment.ipv4_address:
        endpoint["IPAMConfig"] = {"IPv4Address": attachment.ipv4_address}
    return endpoint


def restart_policy(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    return {"Name": name or "no", "MaximumRetryCount": int(count) if count else 0}


def _mounts(project: model.Project, service: model.Service,
            inherited: dict[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
    binds: list[str] = []
    mounts: list[dict[str, Any]] = []
    for m in service.volumes:
        if m.type == "bind" and m.create_host_path:
            # Binds make a missing host directory, as compose's short syntax promises.
            mode = "ro" if m.read_only else "rw"
            if m.propagation:
                mode += "," + m.propagation
            binds.append(f"{m.source}:{m.target}:{mode}")
            continue
        entry: dict[str, Any] = {"Type": m.type, "Target": m.target}
        if m.read_only:
            entry["ReadOnly"] = True
        if m.type == "volume":
            if m.source:
                entry["Source"] = project.volumes[m.source].name
            elif m.target in inherited:  # a recreated container keeps its anonymous volumes
                entry["Source"] = inherited[m.target]
            if m.nocopy:
                entry["VolumeOptions"] = {"NoCopy": True}
        elif m.type == "bind":
            entry["Source"] = m.source
            if m.propagation:
                entry["BindOptions"] = {"Propagation": m.propagation}
        elif m.tmpfs_size is not None:
            entry["TmpfsOptions"] = {"SizeBytes": m.tmpfs_size}
        mounts.append(entry)
    return binds, mounts


def create_body(project: model.Project, service: model.Service, number: int, *, image_id: str = "",
                inherited: dict[str, str] | None = None, network_mode: str | None = None,
                networks_supported: bool = True) -> dict[str, Any]:
    """The `POST /containers/create` body for container `number` of `service`.

    `inherited`: target -> volume name, the anonymous volumes of the container this one replaces.
    `network_mode`: the engine's value for `service:NAME` (container:ID), resolved by the caller.
    """
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in service.ports:
        key = f"{port.target}/{port.protocol}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": port.host_ip, "HostPort": port.published})
    for text in service.expose:
        number_part, _, proto = text.partition("/")
        exposed.setdefault(f"{number_part}/{proto or 'tcp'}", {})
    binds, mounts = _mounts(project, service, inherited or {})
    host: dict[str, Any] = {
        "Binds": binds or None,
        "Mounts": mounts or None,
        "PortBindings": bindings or None,
        "RestartPolicy": restart_policy(service.restart),
        "ReadonlyRootfs": service.read_only,
        "Privileged": service.privileged,
        "CapAdd": list(service.cap_add) or None,
        "CapDrop": list(service.cap_drop) or None,
        "ExtraHosts": list(service.extra_hosts) or None,
        "Dns": list(service.dns) or None,
        "Tmpfs": {path: opts for path, _, opts in (t.partition(":") for t in service.tmpfs)} or None,
    }
    if service.init is not None:
        host["Init"] = service.init
    if service.mem_limit is not None:
        host["Memory"] = service.mem_limit
    body: dict[str, Any] = {
        "Image": service.image,
        "Cmd": list(service.command) if service.command is not None else None,
        "Entrypoint": list(service.entrypoint) if service.entrypoint is not None else None,
        "Env": [f"{k}={v}" for k, v in service.environment] or None,
        "Labels": container_labels(project, service, number, image_id),
        "Tty": service.tty,
        "OpenStdin": service.stdin_open,
        "StdinOnce": False,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Hostname": service.hostname,
        "Domainname": service.domainname,
        "User": service.user,
        "WorkingDir": service.working_dir,
        "ExposedPorts": exposed or None,
        "HostConfig": host,
    }
    if service.stop_signal:
        body["StopSignal"] = service.stop_signal
    if service.healthcheck is not None:
        body["Healthcheck"] = service.healthcheck
    if service.stop_grace_period is not None:
        body["StopTimeout"] = int(service.stop_grace_period)
    if service.network_mode:
        host["NetworkMode"] = network_mode if network_mode is not None else service.network_mode
    elif not networks_supported:
        host["NetworkMode"] = "default"
    else:
        primary = networks_by_priority(service)[0]
        name = project.networks[primary.network].name
        host["NetworkMode"] = name
        body["NetworkingConfig"] = {"EndpointsConfig": {
            name: endpoint_config(project, service, number, primary)}}
    return body


def stop_timeout(service: model.Service) -> int | None:
    return int(service.stop_grace_period) if service.stop_grace_period is not None else None
