"""What every stage of an apply shares: the release, Infra.toml, clients, pacers, Ctrl-C.

One `ReleaseContext` serves a whole run (plan, apply or validate): one client factory, one
ParameterStore (so every build's SSM calls share each region's pacer, as Parameter Store's
throughput is per account and region), the release's SSM templates and renderer, a work
directory for built repos, and the stop event Ctrl-C sets so waits in worker threads end.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..aws.clients import AwsClients
from ..aws.snapshot import UploadSettings
from ..aws.waiting import WaitPolicy
from ..config import InfraConfig
from ..ssm.store import Pacing, ParameterStore
from ..ssm.templates import SsmTemplates, load_ssm_templates
from .observe import Observer, hash_file
from .plan import SsmRenderer
from .spec import ReleaseSpec
from .state import LocalFile
from .wanted import release_renderer

DEFAULT_WAIT = WaitPolicy(delay=10.0, max_delay=60.0, deadline=7200.0)


@dataclass
class ReleaseContext:
    spec: ReleaseSpec
    infra: InfraConfig
    clients: AwsClients
    store: ParameterStore
    render: SsmRenderer | None
    templates: SsmTemplates | None
    workdir: Path
    upload: UploadSettings = field(default_factory=UploadSettings)
    wait: WaitPolicy = DEFAULT_WAIT
    stop: threading.Event = field(default_factory=threading.Event)
    digests: dict[Path, LocalFile] = field(default_factory=dict)  # local files, hashed once

    @classmethod
    def open(cls, spec: ReleaseSpec, infra: InfraConfig, workdir: Path,
             upload: UploadSettings | None = None, wait: WaitPolicy = DEFAULT_WAIT
             ) -> ReleaseContext:
        """The context of `spec`; the SSM templates are loaded and checked now, so a template
        that cannot render fails before anything is observed."""
        clients = AwsClients(infra.aws)
        render = release_renderer(spec, infra.aws.ssm_prefix) if spec.ssm else None
        templates = load_ssm_templates(spec.ssm.templates) if spec.ssm else None
        return cls(spec, infra, clients, ParameterStore(clients, Pacing.from_env()), render,
                   templates, workdir, upload or UploadSettings(), wait)

    def observer(self) -> Observer:
        return Observer(self.spec, self.infra, self.clients, self.store, self.render,
                        self.digests)

    def digest(self, path: Path) -> LocalFile:
        if path not in self.digests:
            self.digests[path] = hash_file(path)
        return self.digests[path]
