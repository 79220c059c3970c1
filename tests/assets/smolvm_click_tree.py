import json, click
from smolvm.cli.commands.app import cli
out = []
def walk(cmd, path):
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            if getattr(sub, "hidden", False): continue
            walk(sub, path + [name])
    flags = []
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.hidden:
            flags += [o for o in p.opts + p.secondary_opts if o.startswith("--")]
    out.append({"path": path, "flags": sorted(set(flags)), "group": isinstance(cmd, click.Group)})
walk(cli, [])
print(json.dumps(out))
