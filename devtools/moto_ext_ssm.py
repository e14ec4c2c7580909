"""moto extensions for SSM, installed into the moto server process by devtools/moto_server.py.

What moto 5.2 lacks and pubsys tests need:
- **Call counts.** Every SSM API call is counted per region and action, so an end-to-end test
  can prove that a re-run made no PutParameter call. `GET /pubsys-ext/ssm/calls` returns
  `{"us-west-2": {"PutParameter": 6, ...}, ...}`; `POST /pubsys-ext/ssm/calls/reset` (and
  moto's own `/moto-api/reset`) clears them.
- **`aws:ec2:image` values.** moto accepts the data type but checks nothing. AWS checks the
  format at once and the image's existence asynchronously: a parameter naming an AMI that
  does not exist in the region is silently not created (or not changed). Modelled here so
  pubsys's read-back after writing has something real to catch.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
from collections import defaultdict
from typing import Any

_lock = threading.Lock()
_calls: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
_AMI_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
_installed = False


def calls() -> dict[str, dict[str, int]]:
    with _lock:
        return {region: dict(actions) for region, actions in _calls.items()}


def reset_calls() -> None:
    with _lock:
        _calls.clear()


def _count_calls() -> None:
    from moto.ssm.responses import SimpleSystemManagerResponse

    original = SimpleSystemManagerResponse.call_action

    def call_action(self: Any) -> Any:
        with _lock:
            _calls[self.region][self._get_action()] += 1
        return original(self)

    SimpleSystemManagerResponse.call_action = call_action


def _serve_counts() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/pubsys-ext/ssm/calls" and method == "GET":
            body = json.dumps(calls()).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        if path == "/pubsys-ext/ssm/calls/reset" and method == "POST":
            reset_calls()
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        if path == "/moto-api/reset" and method == "POST":
            reset_calls()
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = __call__


def _image_data_type() -> None:
    from moto.ec2.models import ec2_backends
    from moto.ssm.exceptions import ValidationException
    from moto.ssm.models import Parameter, SimpleSystemManagerBackend

    original = SimpleSystemManagerBackend.put_parameter

    def put_parameter(self: Any, name: str, description: str, value: str,
                      parameter_type: str, allowed_pattern: str, keyid: str, overwrite: bool,
                      tags: Any, data_type: str, tier: str | None, policies: str | None) -> Any:
        if data_type != "aws:ec2:image":
            return original(self, name, description, value, parameter_type, allowed_pattern,
                            keyid, overwrite, tags, data_type, tier, policies)
        if not _AMI_ID.match(value or ""):
            raise ValidationException(
                f"Parameter value, {value}, is not in a valid format for data type "
                "aws:ec2:image; expected an AMI id such as ami-12345678901234567"
            )
        # moto's ParameterDict loads names lazily in __contains__/__getitem__; .get() would not
        existing = self._parameters[name] if name in self._parameters else []  # noqa: SIM401
        images = ec2_backends[self.account_id][self.region_name].amis
        if value in images or (existing and not overwrite):  # the latter: ParameterAlreadyExists
            return original(self, name, description, value, parameter_type, allowed_pattern,
                            keyid, overwrite, tags, data_type, tier, policies)
        # AWS accepts the call and drops the write after its asynchronous image check fails.
        return Parameter(account_id=self.account_id, name=name, value=value,
                         parameter_type=parameter_type or "String", description=description,
                         allowed_pattern=allowed_pattern, keyid=keyid,
                         last_modified_date=datetime.datetime.now(datetime.timezone.utc),
                         version=existing[-1].version + 1 if existing else 1,
                         data_type=data_type, tier=tier or "Standard", policies=policies)

    SimpleSystemManagerBackend.put_parameter = put_parameter


def install() -> None:
    global _installed
    if _installed:
        return
    _count_calls()
    _serve_counts()
    _image_data_type()
    _installed = True
