"""The Pulumi program behind `pulumi up` in infra/: buckets, KMS signing keys and roles for pubsys.

Modules: `settings` (stack config + Infra.toml -> a plan), `policies` (IAM, key and bucket
policy documents as plain dicts), one module per component (`bucket`, `keys`, `roles`) and
`program` (wires them and exports the outputs `pubsys lock-infra` turns into Infra.lock).
"""
