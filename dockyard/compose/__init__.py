"""Compose: multi-container applications from one YAML file, converged through the Engine API.

Vocabulary (compose's own):
    project      the application: a name (`-p`, `name:`, or the directory's), a working
                 directory, its compose files; every object it makes carries its label
    service      one kind of container in the file (`web`); it runs `scale` containers
    container    `<project>-<service>-<number>`, numbered from 1, labelled with its
                 project, service, number and config hash
    config hash  sha256 of the service's canonical form: when it changes, `up` recreates
    network      `<project>_<key>` (`myapp_default` unless a service says otherwise)
    volume       `<project>_<key>` for named volumes; anonymous ones belong to a container
    orphan       a container of the project whose service the file no longer has

Modules: `interpolation` (${VAR} and .env, pure), `loader` (files -> model), `model`
(the values), `spec` (a service as Engine API bodies, pure), `convergence` (the calls).
Only `convergence` talks to an engine, and only through dockyard.client.
"""
