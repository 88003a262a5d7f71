#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Crash consistency of sector bitmap updates (tests/diff/run.sh, group
logwrites).

    logwrites.py gen WORK SETUP SEED   the parent (qemu-io), the child
                                       (vhdxsetup create --parent), the
                                       step workload and the record script
    logwrites.py points WORK           after the record boot: replay the
                                       dm-log-writes log (wrtool.py
                                       lw-replay), the container of every
                                       replayed child and the verify script
    logwrites.py evaluate WORK SETUP   PASS/FAIL lines

A child (1 MiB blocks, 512-byte sectors) of a parent written all over by
qemu-io is written in the guest through dm-vhdx on dm-log-writes: steps of
partial-block writes (blocks become PARTIALLY_PRESENT, bits get set in the
sector bitmap), whole-block writes (FULLY_PRESENT, over a NOT_PRESENT and a
PARTIALLY_PRESENT block), a buffered write, each step ended by fsync and
followed by the mark "stepN".  The replay and the history oracle are
wrtool.py's (tests/write): at each point the steps acknowledged before it
must read back exactly, a sector of the step in flight may hold its old or
new value, and every other sector must read the parent's data.
"""
import json
import math
import os
import random
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import chains  # noqa: E402  (GUEST_LIB, guest_writes)

WRTOOL = os.path.join(here, "..", "write", "wrtool.py")
MiB = 1 << 20
BS = MiB
VS = 5 * MiB + 1536  # 6 blocks, the last one 1536 bytes
LSS = 512
PAT_SIZE = 4 * MiB


def wrtool(*args):
    return subprocess.run([sys.executable, WRTOOL] + [str(a) for a in args],
                          capture_output=True, text=True)


def plan_steps(rng):
    """Steps of writes (chains.py's dicts plus "step"), in order."""
    s = lambda lo, hi: rng.randint(lo, hi) * LSS  # noqa: E731
    steps = [
        [("direct", BS + s(3, 200), s(1, 9))],                    # new partial block
        [("direct", 3 * BS, BS)],                                 # whole NOT_PRESENT block
        [("direct", BS + s(300, 900), s(2, 30)),                  # more bits, same block
         ("direct", 0, s(1, 4))],                                 # first sectors
        [("direct", 2 * BS - s(1, 9), s(10, 40))],                # straddles blocks 1|2
        [("buffered", 4 * BS + s(1, 100), s(1, 6))],              # page cache: 4K widened
        [("direct", BS + s(3, 200), s(1, 12)),                    # over earlier bits
         ("direct", 3 * BS + s(5, 2000), s(1, 8))],               # into the full block
        [("direct", VS - LSS, LSS)],                              # last sector, tail block
        [("direct", 2 * BS, BS)],                                 # PARTIAL -> whole block
        [("direct", rng.randrange(VS // LSS - 40) * LSS, s(1, 24)) for _ in range(3)],
        [("direct", s(100, 2000), s(1, 16)),
         ("sleep", 0, 0),                                         # the commit timer fires
         ("direct", 4 * BS + s(1000, 2000), s(1, 3))],
    ]
    ops = []
    for k, step in enumerate(steps, 1):
        for mode, off, ln in step:
            if mode == "sleep":
                ops.append(dict(mode="sleep", step=k))
                continue
            ln = min(ln, VS - off)
            src = rng.randrange((PAT_SIZE - ln) // LSS) * LSS
            if ln == BS:
                src = rng.randrange(PAT_SIZE // MiB) * MiB
            x = dict(mode=mode, off=off, len=ln, src=src, step=k, fsync=0,
                     why="step%d" % k)
            if mode == "direct":
                x["bs"] = math.gcd(off, ln, src, MiB)
            ops.append(x)
        last = [x for x in ops if x["step"] == k and x["mode"] != "sleep"][-1]
        last["fsync"] = 1
    return ops, len(steps)


def gen(work, setup, seed):
    rng = random.Random(seed)
    d = os.path.join(work, "lw")
    files = os.path.join(d, "files")
    os.makedirs(files, exist_ok=True)
    ppat = random.Random(seed ^ 0x1234).randbytes(VS)
    pat = random.Random(seed ^ 0x4321).randbytes(PAT_SIZE)
    with open(os.path.join(d, "parent.raw"), "wb") as f:
        f.write(ppat)
    with open(os.path.join(files, "pat.bin"), "wb") as f:
        f.write(pat)
    base = os.path.join(d, "base.vhdx")
    chains.run("qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic,block_size=1M",
               base, str(VS))
    # qemu-io: the parent holds random data in every sector, so that a
    # sector that reads anything but the parent's (zeros of the child's
    # room, another offset) shows.
    chains.run("qemu-io", "-f", "vhdx", "-c",
               "write -s %s 0 %d" % (os.path.join(d, "parent.raw"), VS), base)
    child = os.path.join(d, "child.vhdx")
    chains.run(setup, "create", "--parent", base, "--block-size", "1M", child)
    os.truncate(child, os.path.getsize(child) + 8 * MiB)
    subprocess.run(["cp", child, os.path.join(d, "child-before.vhdx")], check=True)
    ops, nsteps = plan_steps(rng)
    with open(os.path.join(d, "steps.ops"), "w") as f:  # wrtool's ops format
        for x in ops:
            if x["mode"] != "sleep":
                f.write("%d %d %d %s %d\n" % (x["off"], x["len"], x["src"], x["mode"], x["step"]))
    model = bytearray(ppat)
    chains.apply(model, pat, [x for x in ops if x["mode"] != "sleep"])
    with open(os.path.join(d, "final.raw"), "wb") as f:
        f.write(model)
    L = [chains.GUEST_LIB,
         "sz=$(blockdev --getsz /dev/vda)",
         'dmsetup create lwc --noudevsync --table "0 $sz log-writes /dev/vda /dev/vdb" '
         "> /tmp/o 2>&1; res lwc create $? \"$(cat /tmp/o)\"",
         "dmsetup mknodes lwc; dmsetup message lwc 0 mark start",
         "mapt c rw %d /dev/mapper/lwc parent /dev/vdc || exit 1" % (VS // 512)]
    for k in range(1, nsteps + 1):
        for x in ops:
            if x["step"] != k:
                continue
            if x["mode"] == "sleep":
                L.append("sleep 1.5")
            else:
                L += chains.guest_writes("c", [x])
        L.append("dmsetup message lwc 0 mark step%d && res c marked %d" % (k, k))
    L.append("rsha c session 1048576 %s" % chains.sha(model))
    L.append('res c status-end "$(dmsetup status c)"')
    L.append("unmap c")
    L.append("dmsetup message lwc 0 mark removed")
    L.append('res lwc status "$(dmsetup status lwc)"')
    L.append("dmsetup remove --noudevsync lwc; res lwc remove $?")
    L.append('echo "DIFF-LW-RECORDED"')
    with open(os.path.join(d, "guest-record.sh"), "w") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.join(d, "plan.json"), "w") as f:
        json.dump(dict(seed=seed, steps=nsteps, vs=VS, bs=BS, sha=chains.sha(model),
                       setup=setup), f)


def points(work, max_points, max_torn):
    d = os.path.join(work, "lw")
    r = wrtool("lw-replay", os.path.join(d, "log.img"), os.path.join(d, "child-before.vhdx"),
               os.path.join(d, "points"), "--max", max_points, "--torn", max_torn)
    if r.returncode:
        raise SystemExit("wrtool lw-replay: %s" % (r.stdout + r.stderr)[-600:])
    print("LOG " + r.stdout.strip())
    pts = json.load(open(os.path.join(d, "points", "points.json")))["points"]
    size = max(os.path.getsize(os.path.join(d, "points", p["file"])) for p in pts)
    seg = -(-size // MiB) * MiB
    cont = os.path.join(d, "container.img")
    with open(cont, "wb") as c:
        c.truncate(len(pts) * seg)
        for i, p in enumerate(pts):
            path = os.path.join(d, "points", p["file"])
            with open(path, "rb") as f:
                c.seek(i * seg)
                c.write(f.read())
            os.unlink(path)
    plan = json.load(open(os.path.join(d, "plan.json")))
    sectors = plan["vs"] // 512
    # Disks: vda results (tar), vdb the container (ro), vdc the parent (ro).
    # Each point: read-only through dm-linear (replayed in memory), whole
    # device read, a copy of each new content kept.  At a mark, a torn
    # point, the last point and every point with new content, also a copy
    # in tmpfs mapped read-write (the log replayed onto it) and read again,
    # then vhdxsetup check of that copy after the removal.
    rw = " ".join(str(i) for i, p in enumerate(pts)
                  if p["torn"] or "M" in p["flags"] or i == len(pts) - 1)
    L = [chains.GUEST_LIB, "S=%s" % plan["setup"], "seen=' '", "RW=' %s '" % rw, "i=0",
         "while [ $i -lt %d ]; do" % len(pts),
         '  dmsetup create lp --readonly --noudevsync --table "0 %d linear /dev/vdb $((i * %d))"'
         % (seg // 512, seg // 512),
         "  dmsetup mknodes lp; dorw=0",
         '  case "$RW" in *" $i "*) dorw=1 ;; esac',
         "  if mapt p$i ro %d /dev/mapper/lp parent /dev/vdc > /dev/null; then" % sectors,
         "    $DD if=/dev/mapper/p$i of=/tmp/cur bs=1M iflag=direct 2> /dev/null",
         "    s=$(sha256sum < /tmp/cur | cut -c1-64)",
         '    case "$seen" in *" $s "*) ;; *) mv /tmp/cur $O/d-$s.raw; seen="$seen$s "; dorw=1 ;; esac',
         "    rm -f /tmp/cur; res p$i ro $s; unmap p$i > /dev/null",
         "  fi",
         "  if [ $dorw = 1 ]; then",
         "    $DD if=/dev/mapper/lp of=$W/rw.vhdx bs=1M 2> /dev/null",
         "    l=$(newloop $W/rw.vhdx)",
         "    if mapt q$i rw %d $l parent /dev/vdc > /dev/null; then" % sectors,
         "      res p$i rw $($DD if=/dev/mapper/q$i bs=1M iflag=direct 2> /dev/null | sha256sum | cut -c1-64)",
         "      unmap q$i > /dev/null",
         "    else res p$i rw map-failed",
         "    fi",
         "    losetup -d $l",
         '    $S check $W/rw.vhdx > /tmp/o 2>&1; res p$i check $? "$(tr \'\\n\' \' \' < /tmp/o)"',
         "    rm -f $W/rw.vhdx",
         "  fi",
         "  dmsetup remove --noudevsync lp",
         "  i=$((i + 1))",
         "done",
         "res all finished 1",
         "sync; tar -cf /dev/vda -C $W . && echo DIFF-TAR-OK"]
    with open(os.path.join(d, "guest-verify.sh"), "w") as f:
        f.write("\n".join(L) + "\n")
    print("POINTS %d" % len(pts))


def console_res(path):
    """The 'DIFF: ITEM KEY VALUE' lines of a console log."""
    res = {}
    with open(path, errors="replace") as f:
        for line in f:
            if not line.startswith("DIFF: "):
                continue
            parts = line[6:].rstrip("\r\n").split(" ", 2)
            if len(parts) >= 2:
                res.setdefault(parts[0], {}).setdefault(parts[1], []).append(
                    parts[2] if len(parts) > 2 else "")
    return res


def first(res, item, key):
    v = res.get(item, {}).get(key)
    return v[0] if v else None


def evaluate(work, setup):
    v = chains.Verdicts()
    d = os.path.join(work, "lw")
    plan = json.load(open(os.path.join(d, "plan.json")))
    pts = json.load(open(os.path.join(d, "points", "points.json")))["points"]
    res = chains.parse_res(os.path.join(d, "res", "out", "res"))
    ops = os.path.join(d, "steps.ops")
    pat = os.path.join(d, "files", "pat.bin")
    parent = os.path.join(d, "parent.raw")
    checked = {}
    bad_open, bad_data, bad_rw, bad_check = [], [], [], []
    replayed = nrw = 0
    for i, p in enumerate(pts):
        what = "point %d (log entry %d, %s, %d steps acknowledged)" % (
            i, p["entry"], p["flags"], p["step_done"])
        item = res.get("p%d" % i, {})
        st = (item.get("status") or [""])[0]
        if "replayed-in-memory" in st.split():
            replayed += 1
        ro = (item.get("ro") or [None])[0]
        if first(res, "p%d" % i, "create") != "0" or not ro:
            bad_open.append("%s: %s" % (what, " | ".join(item.get("dmesg", [])[-3:]) or "no read"))
            continue
        # At a mark no write is in flight: the acknowledged steps exactly.
        maybe = "" if "M" in p["flags"] else str(p["step_done"] + 1)
        key = (ro, p["step_done"], maybe)
        if key not in checked:
            r = wrtool("history", ops, pat, parent, os.path.join(d, "res", "out", "d-%s.raw" % ro),
                       "--done", p["step_done"], "--maybe", maybe, "--bs", plan["bs"],
                       "--expected-out", os.path.join(d, "h.raw"))
            checked[key] = (r.stdout + r.stderr).strip()
        if checked[key]:
            bad_data.append("%s: %s" % (what, checked[key]))
        rw = (item.get("rw") or [None])[0]
        if rw is None:
            continue
        nrw += 1
        if rw != ro:
            bad_rw.append("%s: read-write mapping read %s, read-only %s" % (what, rw, ro))
        ck = (item.get("check") or ["none"])[0]
        if not ck.startswith("0 "):
            bad_check.append("%s: vhdxsetup check: %s" % (what, ck[:300]))
    n = len(pts)
    ntorn = sum(1 for p in pts if p["torn"])
    nmark = sum(1 for p in pts if "M" in p["flags"])
    print("lw: %d points checked (%d torn, %d at a mark), %d distinct contents, dm-vhdx "
          "replayed a log in memory at %d; %d also mapped read-write and checked" % (
              n, ntorn, nmark, len(set(k[0] for k in checked)), replayed, nrw))

    def verdict(name, bad):
        v.ok(name, not bad, "%d of %d points; first: %s" % (len(bad), n, bad[0] if bad else ""))
    verdict("lw-every-point-opens-read-only", bad_open)
    verdict("lw-acknowledged-steps-and-parent-at-every-point", bad_data)
    verdict("lw-read-write-replay-reads-the-same", bad_rw)
    verdict("lw-vhdxsetup-check-after-read-write-replay", bad_check)
    v.ok("lw-points", n >= plan["steps"] and ntorn > 0 and nmark >= plan["steps"] and
         nrw >= ntorn + nmark,
         "%d points, %d torn, %d marks for %d steps" % (n, ntorn, nmark, plan["steps"]))
    print("EVAL %d %d" % (v.passed, v.failed))


def record_eval(work, setup):
    """Verdicts of the record boot (its console) and of the final child."""
    v = chains.Verdicts()
    d = os.path.join(work, "lw")
    plan = json.load(open(os.path.join(d, "plan.json")))
    res = console_res(os.path.join(d, "record-console.log"))
    c = res.get("c", {})
    why = ""
    if (first(res, "lwc", "create") or "").split()[:1] != ["0"]:
        why = "log-writes table: %s" % first(res, "lwc", "create")
    elif first(res, "c", "create") != "0":
        why = "vhdx table: %s" % " | ".join(c.get("dmesg", [])[-3:])
    elif c.get("wfail"):
        why = "writes failed: %s" % c["wfail"][:2]
    elif len(c.get("marked", [])) != plan["steps"]:
        why = "%d of %d steps marked" % (len(c.get("marked", [])), plan["steps"])
    elif first(res, "c", "session") != plan["sha"]:
        why = "the device read %s at the end, the model is %s" % (first(res, "c", "session"),
                                                                  plan["sha"])
    elif not (first(res, "c", "remove") or "").startswith("0"):
        why = "dmsetup remove: %s" % first(res, "c", "remove")
    elif "logging_disabled" in (first(res, "lwc", "status") or ""):
        why = "dm-log-writes stopped logging"
    v.ok("lw-record-workload", not why, why)
    r = subprocess.run([setup, "check", os.path.join(d, "child.vhdx")], capture_output=True,
                       text=True)
    v.ok("lw-final-child-vhdxsetup-check", r.returncode == 0,
         "exit %d: %s" % (r.returncode, (r.stdout + r.stderr).strip()[-300:]))
    r = subprocess.run([setup, "info", "--json", os.path.join(d, "child.vhdx")],
                       capture_output=True, text=True)
    try:
        state = json.loads(r.stdout).get("log-state")
    except ValueError:
        state = "unreadable: " + (r.stdout + r.stderr)[-200:]
    v.ok("lw-final-child-log-clean", state == "clean", "log-state %s" % state)
    print("EVAL %d %d" % (v.passed, v.failed))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "record-eval":
        record_eval(sys.argv[2], sys.argv[3])
    elif cmd == "points":
        points(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "evaluate":
        evaluate(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
