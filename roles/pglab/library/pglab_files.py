#!/usr/bin/python
# Several small files into one directory in one module run: `copy` costs two (a stat, then the
# file module) per file, and each is a Python start on the node (seconds on an emulated VM).

DOCUMENTATION = r"""
module: pglab_files
short_description: Write several small files into one directory, only those whose content differs
description:
  - Creates I(directory) (owner I(owner), mode I(directory_mode)) and writes each file of I(files)
    whose content, mode or owner differs, atomically (a temporary file renamed over the old one).
options:
  directory:
    description: The directory the files go to.
    type: path
    required: true
  directory_mode:
    description: Mode of the directory.
    type: str
    default: "0750"
  owner:
    description: Owner of the directory and of every file.
    type: str
    required: true
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


def mend(path, mode, uid, gid):
    """Make path's mode and owner the wanted ones; True when something changed."""
    st = os.stat(path)
    changed = False
    if st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed = True
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
        changed = True
    return changed


def write(path, content, mode, uid, gid):
    """Write content to path atomically, with its mode and owner before it is visible."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".pglab-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chmod(tmp, mode)
        os.chown(tmp, uid, gid)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directory=dict(type="path", required=True),
            directory_mode=dict(type="str", default="0750"),
            owner=dict(type="str", required=True),
            files=dict(type="list", elements="dict", required=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        account = pwd.getpwnam(params["owner"])
    except KeyError:
        module.fail_json(msg="no such user: %s" % params["owner"])
    uid, gid = account.pw_uid, account.pw_gid
    directory = params["directory"]
    changed_files = []
    changed = False
    if not os.path.isdir(directory):
        changed = True
        if not module.check_mode:
            os.makedirs(directory)
    if not module.check_mode:
        changed = mend(directory, int(params["directory_mode"], 8), uid, gid) or changed
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
                write(path, content, mode, uid, gid)
        elif not module.check_mode and mend(path, mode, uid, gid):
            changed_files.append(name)
    module.exit_json(changed=changed or bool(changed_files), changed_files=changed_files)


if __name__ == "__main__":
    main()
