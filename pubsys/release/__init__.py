"""The declarative release: describe a release once, as data, and converge on it.

The pieces, each usable without the others:
- `spec`: the release file (YAML) -> a typed, validated `ReleaseSpec`; every error names the
  field and its line (`yamlnodes` reads YAML as a node tree that keeps line numbers);
- `state`: what exists (published repo, AMIs per region, SSM values, local inputs), as frozen
  values with a fingerprint, so a saved plan can tell when the world changed;
- `plan`: (spec, observed state) -> the steps that would change something, in dependency
  order; `planfile` writes and reads plans as JSON and as text grouped by variant/arch and
  region;
- `lease`: one release at a time per repo bucket, through an S3 conditional write;
- `progress`: a live variant/arch x stage table (or one JSON event per line) for apply.
On top of these, the I/O:
- `observe` / `observe_repo`: what exists, read from AWS and the published repo;
- `stages_ami`, `stages_ssm`, `stages_repo` (chosen per stage by `runner`): each stage by the
  commands' own code; `execute` runs a plan's stages in dependency order, pairs in parallel;
- `commands` (`release plan`, `release validate`) and `apply` (`release apply`, under the
  lease); `context` holds what one run shares; `outputs` writes AMI and SSM JSON.
"""
