#!/usr/bin/python
# Several small files into one directory in one module run: `copy` and `template` cost two (a stat,
# then the file module) per file, and each is a Python start on the node (seconds on an emulated VM).

DOCUMENTATION = r"""
module: pglab_files
short_description: Write several small files into one directory, only those whose content differs
description:
  - Creates I(directory) (owner I(owner), mode I(directory_mode)) and writes each file of I(files)
    whose content, mode or owner differs, atomically (a temporary file renamed over the old one),
    after I(validate) accepted it.
options:
  directory:
    description: The directory the files go to.
    type: path
    required: true
  directory_mode:
    description: Mode of the directory; left as it is when not given.
    type: str
  owner:
    description: Owner of the directory and of every file; left as it is when not given.
    type: str
  validate:
    description: A command run on each new content before it replaces a file (%s is the new file).
    type: str
  directories:
    description: More directories to create first, each a I(path) and a I(mode), owned by I(owner)
      (a service's log, lock and data directories beside its configuration).
    type: list
    elements: dict
    default: []
  files:
    description: Each file's name (inside I(directory)), content and mode.
    type: list
    elements: dict
    required: true
"""

RETURN = r"""
changed_files:
  description: Names of the files written or whose mode or owner was mended.
  type: list
  returned: always
"""

import os
import pwd
import tempfile

from ansible.module_utils.basic import AnsibleModule


def mend(path, mode, owner):
    """Make path's mode and owner (uid, gid; None: any) the wanted ones; True when something changed."""
    st = os.stat(path)
    changed = False
    if mode is not None and st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed = True
    if owner is not None and (st.st_uid, st.st_gid) != owner:
        os.chown(path, *owner)
        changed = True
    return changed


def make_directories(path, owner):
    """Create path and its missing parents, each owned by owner, as the file module does."""
    parent = os.path.dirname(path.rstrip("/"))
    if parent and not os.path.isdir(parent):
        make_directories(parent, owner)
    os.mkdir(path)
    if owner is not None:
        os.chown(path, *owner)


def write(module, path, content, mode, owner, validate):
    """Write content to path atomically, with its mode and owner before it is visible, once
    ``validate`` (if any) accepted it."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".pglab-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        mend(tmp, mode, owner)
        if validate:
            rc, out, err = module.run_command(validate % tmp)
            if rc != 0:
                module.fail_json(msg="%s refused the new %s: %s" % (validate.split()[0], path, (err or out).strip()),
                                 rc=rc, stdout=out, stderr=err)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directory=dict(type="path", required=True),
            directory_mode=dict(type="str"),
            owner=dict(type="str"),
            files=dict(type="list", elements="dict", required=True),
            validate=dict(type="str"),
            directories=dict(type="list", elements="dict", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    owner = None
    if params["owner"]:
        try:
            account = pwd.getpwnam(params["owner"])
        except KeyError:
            module.fail_json(msg="no such user: %s" % params["owner"])
        owner = (account.pw_uid, account.pw_gid)
    directory = params["directory"]
    wanted = [(directory, params["directory_mode"])]
    wanted += [(item["path"], item.get("mode")) for item in params["directories"]]
    changed_files = []
    changed = False
    for path, mode in wanted:
        if not os.path.isdir(path):
            changed = True
            if not module.check_mode:
                make_directories(path, owner)
        if not module.check_mode:
            changed = mend(path, int(str(mode), 8) if mode else None, owner) or changed
    for item in params["files"]:
        name, mode = item["name"], int(str(item.get("mode", "0644")), 8)
        if "/" in name:
            module.fail_json(msg="a file name, not a path: %s" % name)
        content = item["content"].encode()
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                same = f.read() == content
        except OSError:
            same = False
        if not same:
            changed_files.append(name)
            if not module.check_mode:
                write(module, path, content, mode, owner, params["validate"])
        elif not module.check_mode and mend(path, mode, owner):
            changed_files.append(name)
    module.exit_json(changed=changed or bool(changed_files), changed_files=changed_files)


if __name__ == "__main__":
    main()
