"""The builder: Dockerfiles, their context and their layer cache, turned into images by the engine.

Vocabulary:

- *context*: the files a client sends with a build (a tar stream), unpacked
  in a temporary directory (`context.BuildContext`); COPY/ADD sources are
  paths inside it and can never reach outside it.
- *instruction*: one Dockerfile line as parsed by BuildKit's parser
  (`dockerfile.Instruction`); words are expanded only when the step runs
  (`expand`), against the build args and environment of that moment.
- *stage*: a `FROM` and the instructions up to the next one; `--target`
  stops after the named stage, `COPY --from` reads an earlier stage's image.
- *step*: one instruction dispatched (`dispatch.Builder`); its result is an
  image whose parent is the previous step's image.  Config-only steps add
  no layer (an `empty_layer` history entry); RUN, COPY, ADD and WORKDIR add one.
- *worker*: what the engine does for a build (`dispatch.BuildWorker`:
  resolve or pull a base, run a container and commit it, make a layer from
  files, store, tag), implemented in daemon/build.py; the builder itself
  never imports the daemon.
- *cache key*: a step's parent image, its history line and resulting config
  (for COPY/ADD, the checksum of its sources) hashed (`cache`); a hit reuses
  the image the same step made before, while that image exists.

Module map: dockerfile.py (parse, check, stages), expand.py (words and
variables), context.py (the context and its paths), copyfiles.py (what COPY and
ADD write), cache.py, dispatch.py
(the steps and dockerd's messages).
"""
