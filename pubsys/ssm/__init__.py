"""SSM parameters that let users find images by name: `ssm`, `promote-ssm`, `validate-ssm`.

- templates.py  what the parameters are called and hold (pure: load, filter, render);
- diff.py       what publishing changes, what validation finds (pure rules);
- ssm_json.py   the region -> name -> value JSON the commands write and read;
- store.py      Parameter Store I/O: paced parallel reads and writes, read-back, Ctrl-C;
- guard.py      no private image under /aws/ (checked live for ssm and promote-ssm);
- publish.py, promote.py, validate.py  one command each: `XxxOptions` and `run_xxx`.
"""
