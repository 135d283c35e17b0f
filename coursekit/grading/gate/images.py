"""The gate's rules for images and builds: the course's images and the submission's own, nothing pulled.

A build has no network, a capped context and memory, starts ``FROM`` the course's images (or
``scratch``, or an earlier stage), downloads nothing (``ADD`` of a URL), stays inside its context,
and its tag lives under the submission's namespace; the gate's own labels do not show in its history
or progress. Part of :class:`~coursekit.grading.gate.policy.Policy`.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
from urllib.parse import quote, urlencode

from ...dockerfile.limits import size_bytes
from ...dockerfile.syntax import parse as parse_dockerfile
from .routes import Forward, Refused, Route, one, refuse
from .tenant import GRADER, TENANT, Tenant, registry_host

URL = re.compile(r"[a-z][a-z0-9+.-]*://", re.I)


class ImageRules:
    """Images and builds (mixed into :class:`~coursekit.grading.gate.policy.Policy`)."""

    def shown_image(self, doc: dict) -> dict:
        t = self.tenant
        if "RepoTags" in doc:
            ours = self.tenant.owns((doc.get("Config") or {}).get("Labels") or doc.get("Labels"))
            doc["RepoTags"] = [t.untag(x) for x in doc.get("RepoTags") or []
                               if t.mine(x) or (not ours and x in self.course_images)]
            # a course image's own digests (as pulled in full mode), never another submission's registry
            doc["RepoDigests"] = [t.untag(x) for x in doc.get("RepoDigests") or [] if t.mine(x) or (
                not ours and not registry_host(x.partition("/")[0]))]
        if t.owns((doc.get("Config") or {}).get("Labels") or doc.get("Labels")):  # (a course image's stay as made)
            if isinstance(doc.get("Config"), dict):
                doc["Config"]["Labels"] = t.labels_out(doc["Config"].get("Labels"))
            if "Labels" in doc:
                doc["Labels"] = t.labels_out(doc.get("Labels"))
        doc.pop("ContainerConfig", None)  # the build's step container: another id, another name
        doc.pop("Container", None)
        return doc

    def _images(self, r: Route):
        p, t = r.parts, self.tenant
        if len(p) == 2 and p[1] == "json" and r.method == "GET":
            ids = set(self.course_images.values())
            query = "filters=" + t.filters(one(r.query, "filters"), by_label=False)  # (the course's images too)
            if one(r.query, "all"):
                query += "&all=" + quote(one(r.query, "all"))
            return Forward("GET", "/images/json", query,
                           then=lambda docs: [self.shown_image(d) for d in docs
                                              if t.owns(d.get("Labels")) or d.get("Id") in ids])
        if len(p) == 2 and p[1] == "get" and r.method == "GET":
            names = [self.image(n)["Id"] for n in r.query.get("names", [])]
            return Forward("GET", "/images/get", urlencode([("names", n) for n in names]))
        if len(p) == 2 and p[1] == "create" and r.method == "POST" and one(r.query, "fromImage"):
            return self._pull(r)
        if len(p) >= 2 and p[1] in ("create", "load", "prune", "search"):
            refuse("pull", "nothing is pulled, loaded or searched in the grading sandbox: use the course's images, "
                           "or build your own FROM them")
        if len(p) < 2:
            refuse("endpoint", "not an image endpoint", 404)
        action = p[-1] if r.method != "DELETE" else ""
        name = "/".join(p[1:-1] if action else p[1:])
        if r.method == "POST" and action == "push":
            return self._push(name, r)
        doc = self.image(name)
        if r.method == "GET" and action == "json":
            return Forward("GET", f"/images/{doc['Id']}/json", then=self.shown_image)
        if r.method == "GET" and action == "history":
            return Forward("GET", f"/images/{doc['Id']}/history", then=lambda rows: [
                {**row, "Tags": [t.untag(x) for x in row.get("Tags") or [] if t.mine(x)
                                 or x in self.course_images]} for row in rows
                if f"LABEL {TENANT}=" not in row.get("CreatedBy", "") and f"LABEL {GRADER}=" not in
                row.get("CreatedBy", "")])
        if r.method == "GET" and action == "get":
            return Forward("GET", f"/images/{doc['Id']}/get")
        if r.method == "POST" and action == "tag":
            repo = one(r.query, "repo")
            if not repo:
                refuse("tag", "give repo=", 400)
            new = f"{t.tag(repo)}:{one(r.query, 'tag', 'latest')}"
            return Forward("POST", f"/images/{doc['Id']}/tag",
                           urlencode({"repo": t.tag(repo), "tag": one(r.query, "tag", "latest")}),
                           after=lambda status, _: status < 300 and t.tags.add(new))
        if r.method == "DELETE":
            stored = None if Tenant.looks_like_id(name) else t.tag(name)
            if stored is not None and self._has_name(stored):
                target = stored  # one of its names: that name goes (the image too, if it was the last)
            elif t.owns((doc.get("Config") or {}).get("Labels")):
                target = doc["Id"]
            else:
                refuse("course images", "the course's images stay (remove only the images you built or tagged)")
            return Forward("DELETE", f"/images/{quote(target, safe='/:@')}", r.raw_query,
                           then=lambda rows: [{k: t.untag(v) for k, v in row.items()} for row in rows])
        refuse("endpoint", f"{r.method} /images/<name>/{action} is not served to a submission", 404)

    def _has_name(self, stored: str) -> bool:
        """Is ``stored`` (a tag or a ``repo@digest``) a name an image on the engine has?"""
        with contextlib.suppress(Exception):
            doc = self._admin().inspect_image(stored)
            names = (doc.get("RepoTags") or []) + (doc.get("RepoDigests") or [])
            return stored in names or f"{stored}:latest" in names
        return False

    # ------------------------------------------------------------------ registries of the submission's own
    def _registry_ref(self, given: str, what: str) -> str:
        """``given`` (as the submission names it) as stored, when it names a registry the submission runs."""
        stored = self.tenant.tag(given)
        if not self.tenant.mine(stored) or stored.startswith(self.tenant.repo):
            if what == "pull":
                refuse(what, f"{given}: nothing is pulled in the grading sandbox: use the course's images, or build "
                             "your own FROM them (only a registry you run, 127.0.0.1:PORT/..., can be pulled from)")
            refuse(what, f"{given}: push only to a registry you run (an image name that starts with its "
                         "127.0.0.1:PORT/); nothing else is reachable from the grading sandbox")
        return stored

    def _push(self, name: str, r: Route):
        stored = self._registry_ref(name, "push")
        query = urlencode({"tag": one(r.query, "tag")}) if one(r.query, "tag") else ""
        # (no credentials: the registry is the submission's own; the engine reads an empty JSON body as none)
        return Forward("POST", f"/images/{quote(stored, safe='/:')}/push", query, b"{}", lines=self._registry_line)

    def _pull(self, r: Route):
        q = r.query
        if one(q, "fromSrc") or one(q, "repo") or one(q, "platform") not in ("",):
            refuse("pull", "an import or a pull for another platform is not served to a submission")
        stored = self._registry_ref(one(q, "fromImage"), "pull")
        query = [("fromImage", stored)] + ([("tag", one(q, "tag"))] if one(q, "tag") else [])
        return Forward("POST", "/images/create", urlencode(query), lines=self._registry_line)

    def _registry_line(self, doc: dict) -> dict:
        return {k: self.tenant.shown_text(v) if isinstance(v, str) else v for k, v in doc.items()}

    def _build(self, r: Route, body: bytes):
        t, q = self.tenant, r.query
        if len(body) > self.caps.context_bytes:
            refuse("context", f"a build context is at most {self.caps.context_bytes / 1e6:.0f} MB", 413)
        if one(q, "remote"):
            refuse("remote", "the build context comes from the submission, never from a URL")
        self._cap("images")
        dockerfile = self._dockerfile(body, one(q, "dockerfile", "Dockerfile"))
        self._check_dockerfile(dockerfile)
        try:
            labels = json.loads(one(q, "labels", "{}") or "{}")
        except ValueError:
            labels = {}
        lim = self.limits.create_options(network="x")
        memory = size_bytes(lim["mem_limit"])
        query = [("t", t.tag(x)) for x in q.get("t", []) if x] + [
            ("dockerfile", one(q, "dockerfile", "Dockerfile")), ("labels", json.dumps(t.build_labels(labels))),
            ("networkmode", "none"), ("pull", "0"), ("rm", "1"), ("forcerm", "1"), ("memory", str(memory)),
            ("memswap", str(memory)), ("q", one(q, "q", "0")), ("nocache", one(q, "nocache", "0"))]
        for key in ("buildargs", "target", "shmsize"):
            if one(q, key):
                query.append((key, one(q, key)))
        return Forward("POST", "/build", urlencode(query), body, lines=self._build_line)

    def _build_line(self, doc: dict) -> dict | None:
        text = doc.get("stream")
        if isinstance(text, str):
            if f"LABEL {TENANT}=" in text or f"LABEL {GRADER}=" in text:
                return None  # the gate's own labels: not the submission's steps
            doc["stream"] = self.tenant.shown_text(text)
        return doc

    def _dockerfile(self, context: bytes, name: str) -> str:
        try:
            with tarfile.open(fileobj=io.BytesIO(context)) as tar:
                for member in tar.getmembers():
                    path = member.name
                    if path.startswith("/") or ".." in path.split("/"):
                        refuse("context", f"{path}: a build context holds relative paths inside it only")
                    if (member.issym() or member.islnk()) and (member.linkname.startswith("/")
                                                              or ".." in member.linkname.split("/")):
                        refuse("context", f"{path} links to {member.linkname}, outside the build context")
                found = tar.extractfile(name.lstrip("./") or "Dockerfile")
                return found.read(1 << 20).decode("utf-8", "replace") if found else ""
        except (tarfile.TarError, KeyError):
            refuse("context", f"the build context is not a tar archive with a {name}", 400)

    def _check_dockerfile(self, text: str) -> None:
        df = parse_dockerfile(text)
        for inst in df.instructions:
            if inst.keyword == "ADD" and any(URL.match(w) for w in (inst.exec_form or inst.rest.split())[:-1]):
                refuse("ADD <url>", f"line {inst.line}: the engine would download it; put the file in the "
                                    "context and COPY it")
        for stage in df.stages:
            if stage.base_stage is not None or stage.image.lower() == "scratch":
                continue
            if "$" in stage.image:
                refuse("FROM", f"FROM {stage.image}: name the base image itself (no build variable), one of the "
                               f"course's images")
            if stage.image in self.course_images:
                continue
            with contextlib.suppress(Refused):
                self.image(stage.image)
                if not Tenant.looks_like_id(stage.image):
                    refuse("FROM", f"FROM {stage.image}: build FROM the course's images "
                                   f"({', '.join(sorted(self.course_images))})")
                continue
            refuse("FROM", f"FROM {stage.image}: that image is not here, and nothing is pulled; use one of the "
                           f"course's images: {', '.join(sorted(self.course_images))}")
