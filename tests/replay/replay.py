#!/usr/bin/env python3
"""tests/replay/replay.py - the shop's outage (../shared/postmortem.txt),
replayed against Verona (issue 20): `make replay`, and `--short` in
`make check`.

Verona runs 4 workers of the test-hooks build (release code with the test
knobs) with a private PostgreSQL; a real Prometheus (Debian's) scrapes it
every second with deploy/prometheus/verona-alerts.yml loaded; wrk puts
logins and session checks through it the whole time.

1. "10:00": a build that leaks on every request is deployed with
   `verona ctl reload --wait`. Verona must catch it on probation and roll
   it back by itself (reload --wait exits 1); VeronaWorkerMemoryGrowing and
   VeronaRolloutRolledBack must fire in Prometheus (read from its HTTP API,
   /api/v1/alerts) and resolve after the rollback.
2. A build that passes its probation and then leaks is deployed: the
   rollout completes, and Verona recycles its workers at the soft limit;
   VeronaWorkerMemoryGrowing must fire.
Throughout: 0 failed logins and session checks. Prints the timeline, as
the post-mortem did, and writes it to var/replay.txt.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "build", "hooks", "bin")
SHORT = "--short" in sys.argv[1:]
BASE = int(os.environ.get("REPLAY_PORT", "18900"))
PORT, METRICS, PROM, PGPORT = BASE, BASE + 1, BASE + 2, BASE + 3

# The leak: every request of a leaking worker keeps LEAK_KB, touched.
# Session checks every PACE_MS on each of 8 connections (about 160 a
# second a worker) make a leaking worker grow some 3.5 MiB a second: from
# 60% of the soft limit to the limit takes long enough (about 10 s) for
# the memory alert (5 s pending, 1 s scrapes) to fire before Verona acts.
SOFT_MB = 96 if SHORT else 128
PROBATION_MS = 40000 if SHORT else 45000
LEAK_KB = 24
PACE_MS = 10
USERS = 40
LATE_LEAK_MS = PROBATION_MS + 5000  # phase 2: after the canary's probation
PHASE_DEADLINE = 240


class Failed(Exception):
    pass


def now():
    return time.time()


def http(url, data=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Replay:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="verona-replay.")
        os.chmod(self.tmp, 0o755)
        self.procs = []
        self.pg = os.path.join(self.tmp, "pg")
        self.sock = os.path.join(self.tmp, "verona.sock")
        self.log = os.path.join(self.tmp, "serve.log")
        self.timeline = []  # (time, text)
        self.t0 = None
        self.env = dict(os.environ)

    # ---- parts ----
    def say(self, text):
        print("replay: " + text, file=sys.stderr, flush=True)

    def mark(self, t, text):
        self.timeline.append((t, text))
        self.say("%s  %s" % (self.clock(t), text))

    def clock(self, t):
        if self.t0 is None:
            return "--:--:--"
        s = int(round(t - self.t0))
        sign = "-" if s < 0 else ""
        s = abs(s)
        return "%s%02d:%02d:%02d" % (sign, 10 + s // 3600, (s // 60) % 60, s % 60)

    def start_pg(self):
        env = dict(self.env, VERONA_PG_PORT=str(PGPORT), VERONA_PG_FSYNC="off")
        url = subprocess.run(["sh", "deploy/pg.sh", "start", self.pg], cwd=ROOT, env=env, check=True,
                             stdout=subprocess.PIPE, text=True).stdout.strip()
        self.env["VERONA_DATABASE_URL"] = url
        subprocess.run([os.path.join(BIN, "verona"), "migrate"], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def ctl(self, *args):
        r = subprocess.run([os.path.join(BIN, "verona"), "ctl", "-s", self.sock] + list(args), env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return r.returncode, r.stdout

    def status(self):
        rc, out = self.ctl("status", "--json")
        return json.loads(out) if rc == 0 else None

    def start_verona(self):
        shutil.copy(os.path.join(BIN, "verona-worker"), os.path.join(self.tmp, "good-worker"))
        shutil.copy(os.path.join(BIN, "verona-worker"), os.path.join(self.tmp, "worker"))
        conf = os.path.join(self.tmp, "verona.conf")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:%d\nworkers = 4\nadmin_socket = %s\nmetrics_listen = 127.0.0.1:%d\n"
                    "worker_binary = %s\ntrusted_proxies = 127.0.0.1\n"
                    "memory_soft_limit_mb = %d\nmemory_hard_limit_mb = %d\nprobation_ms = %d\n"
                    "health_interval_ms = 200\nargon2_memlimit_kib = 8192\nargon2_opslimit = 1\n"
                    % (PORT, self.sock, METRICS, os.path.join(self.tmp, "worker"), SOFT_MB, 4 * SOFT_MB,
                       PROBATION_MS))
        log = open(self.log, "w")
        self.procs.append(subprocess.Popen([os.path.join(BIN, "verona"), "serve", "-c", conf], env=self.env,
                                           stdout=log, stderr=log, cwd=self.tmp))
        self.wait(lambda: (self.status() or {}).get("totals", {}).get("ready") == 4, 30, "4 ready workers")

    def users(self):
        tokens = []
        # The users bench/login.lua logs in (bench0001.., one password).
        for n in range(1, USERS + 1):
            body = json.dumps({"username": "bench%04d" % n, "password": "bench password 1"}).encode()
            hdr = {"Content-Type": "application/json", "X-Forwarded-For": "198.19.0.%d" % n}
            code, _ = http("http://127.0.0.1:%d/v1/users" % PORT, body, hdr)
            if code != 201:
                raise Failed("registering bench%04d: %d" % (n, code))
            code, answer = http("http://127.0.0.1:%d/v1/login" % PORT, body, hdr)
            if code != 200:
                raise Failed("logging in bench%04d: %d" % (n, code))
            tokens.append(json.loads(answer)["token"])
        with open(os.path.join(self.tmp, "tokens"), "w") as f:
            f.write("\n".join(tokens) + "\n")

    def start_prometheus(self):
        conf = os.path.join(self.tmp, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: verona\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n"
                    % (os.path.join(ROOT, "deploy", "prometheus", "verona-alerts.yml"), METRICS))
        log = open(os.path.join(self.tmp, "prometheus.log"), "w")
        self.procs.append(subprocess.Popen(
            ["prometheus", "--config.file=" + conf, "--storage.tsdb.path=" + os.path.join(self.tmp, "prom"),
             "--web.listen-address=127.0.0.1:%d" % PROM, "--log.level=warn"], stdout=log, stderr=log))

        def scraped():
            code, body = self.prom("/api/v1/query?query=up%7Bjob%3D%22verona%22%7D")
            return code == 200 and any(r["value"][1] == "1" for r in json.loads(body)["data"]["result"])
        self.wait(scraped, 60, "Prometheus scraping Verona")

    def prom(self, path):
        try:
            return http("http://127.0.0.1:%d%s" % (PROM, path))
        except (urllib.error.URLError, ConnectionError, OSError):
            return 0, b""

    def start_load(self):
        env = dict(self.env, TOKENS_FILE=os.path.join(self.tmp, "tokens"), PACE_MS=str(PACE_MS),
                   USERS=str(USERS))
        self.wrk = {}
        for name, script, conns, pace in (("sessions", "bench/session.lua", 8, PACE_MS),
                                          ("logins", "bench/login.lua", 2, 100)):
            out = open(os.path.join(self.tmp, "wrk-%s.txt" % name), "w")
            # Connection: close, so that every request is a new connection
            # the kernel hands to any worker: a new worker gets its share at
            # once (kept-alive connections would stay on the old ones).
            p = subprocess.Popen(["wrk", "-t1", "-c%d" % conns, "-d3600s", "--timeout", "10s", "-s", script,
                                  "-H", "Connection: close",
                                  "http://127.0.0.1:%d/v1/%s" % (PORT, "session" if name == "sessions" else "login")],
                                 cwd=ROOT, env=dict(env, PACE_MS=str(pace)), stdout=out, stderr=subprocess.STDOUT)
            self.wrk[name] = (p, out.name)
            self.procs.append(p)

    def stop_load(self):
        results = {}
        for name, (p, path) in self.wrk.items():
            p.send_signal(signal.SIGINT)
            p.wait(timeout=30)
            line = [ln for ln in open(path) if ln.startswith("BENCH ")]
            if not line:
                raise Failed("wrk %s printed no summary (%s)" % (name, path))
            results[name] = dict(kv.split("=") for kv in line[-1].split()[1:])
        return results

    def wait(self, cond, seconds, what):
        deadline = now() + seconds
        while now() < deadline:
            if cond():
                return
            time.sleep(0.2)
        raise Failed("no %s within %d s" % (what, seconds))

    # ---- alerts, as Prometheus has them ----
    def alerts(self):
        code, body = self.prom("/api/v1/alerts")
        if code != 200:
            return {}
        seen = {}
        for a in json.loads(body)["data"]["alerts"]:
            name = a["labels"]["alertname"]
            seen[name] = "firing" if a["state"] == "firing" or seen.get(name) == "firing" else a["state"]
        return seen

    def deploy(self, script):
        path = os.path.join(self.tmp, "worker")
        with open(path + ".new", "w") as f:
            f.write("#!/bin/sh\n%s exec %s \"$@\"\n" % (script, os.path.join(self.tmp, "good-worker")))
        os.chmod(path + ".new", 0o755)
        os.rename(path + ".new", path)
        return subprocess.Popen([os.path.join(BIN, "verona"), "ctl", "-s", self.sock, "reload", "--wait"],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def watch(self, reload, until, seconds, phase):
        """Polls Prometheus and Verona until `until(state)` holds; marks
        each first on the timeline."""
        state = {"fired": {}, "pending": {}, "resolved": {}, "reload_rc": None, "rollout": None,
                 "memory_restarts": None, "rolled_back_at": None}
        deadline = now() + seconds
        base = None
        while now() < deadline:
            t = now()
            current = self.alerts()
            for name, st in current.items():
                if st == "pending" and name not in state["pending"] and name not in state["fired"]:
                    state["pending"][name] = t
                    self.mark(t, "%s pending in Prometheus (the condition holds; waiting its `for`)" % name)
                if st == "firing" and name not in state["fired"]:
                    state["fired"][name] = t
                    self.mark(t, "%s FIRING in Prometheus" % name)
            for name in list(state["fired"]):
                if name not in current and name not in state["resolved"]:
                    state["resolved"][name] = t
                    self.mark(t, "%s resolved" % name)
            st = self.status()
            if st is not None:
                ro = (st.get("rollout") or {}).get("state")
                if ro != state["rollout"]:
                    state["rollout"] = ro
                    if ro in ("rolling_back", "rolled_back") and state["rolled_back_at"] is None:
                        state["rolled_back_at"] = t
                    reason = (st.get("rollout") or {}).get("reason") or ""
                    self.mark(t, "Verona: rollout %s%s" % (ro, (": " + reason) if reason else ""))
                mem = st.get("totals", {}).get("restarts_by_reason", {}).get("memory", 0)
                if base is None:
                    base = mem
                if mem > base and state["memory_restarts"] is None:
                    state["memory_restarts"] = t
                    self.mark(t, "Verona: worker replaced at the soft limit (%d MiB), gracefully" % SOFT_MB)
            if reload is not None and state["reload_rc"] is None and reload.poll() is not None:
                state["reload_rc"] = reload.returncode
                out = reload.stdout.read().strip().replace("\n", " / ")
                self.mark(now(), "verona ctl reload --wait exited %d (%s)" % (reload.returncode, out))
            if until(state):
                return state
            time.sleep(0.5)
        raise Failed("phase %s: not done within %d s: %s" % (phase, seconds, json.dumps(state, default=str)))

    # ---- the replay ----
    def run(self):
        self.say("build: test-hooks (release code with the test knobs), 4 workers, soft limit %d MiB, "
                 "probation %d s%s" % (SOFT_MB, PROBATION_MS // 1000, " (short)" if SHORT else ""))
        self.start_pg()
        self.start_verona()
        self.users()
        self.start_prometheus()
        self.start_load()
        time.sleep(3)  # steady traffic before the deploy

        # Phase 1: the shop's deploy, a build that leaks from the start.
        self.t0 = now()
        reload = self.deploy("VERONA_TEST_LEAK_KB=%d" % LEAK_KB)
        self.mark(self.t0, "deploy of a build that leaks %d KiB a request: verona ctl reload --wait" % LEAK_KB)
        one = self.watch(reload, lambda s: s["reload_rc"] is not None
                         and all(n in s["resolved"] for n in ("VeronaWorkerMemoryGrowing", "VeronaRolloutRolledBack")),
                         PHASE_DEADLINE, "1")
        if one["reload_rc"] != 1:
            raise Failed("the leaking build was not rolled back (reload --wait gave %s)" % one["reload_rc"])
        status = self.status()
        builds = {w.get("binary_sha256") for w in status["workers"]}
        if builds != {status["rollout"]["from"]}:
            raise Failed("after the rollback the workers run %s, not the old build %s" % (builds, status["rollout"]["from"]))

        # Phase 2: a build that passes probation, then leaks.
        t2 = now()
        reload = self.deploy("VERONA_TEST_LEAK_KB=%d VERONA_TEST_LEAK_AFTER_MS=%d" % (LEAK_KB, LATE_LEAK_MS))
        self.mark(t2, "deploy of a build that starts leaking %d s after it starts (passes probation)"
                  % (LATE_LEAK_MS // 1000))
        two = self.watch(reload, lambda s: s["reload_rc"] is not None and s["memory_restarts"] is not None
                         and "VeronaWorkerMemoryGrowing" in s["fired"], PHASE_DEADLINE + PROBATION_MS // 1000, "2")
        if two["reload_rc"] != 0:
            raise Failed("the slow leak's rollout did not complete (reload --wait gave %s)" % two["reload_rc"])

        load = self.stop_load()
        for name in ("logins", "sessions"):
            self.mark(now(), "wrk %s: %s requests, %s failed" % (name, load[name]["requests"], load[name]["failed"]))
        failed = sum(int(load[n]["failed"]) for n in load)
        self.report(one, two, load, t2)
        if failed != 0:
            raise Failed("%d requests failed (logins %s, sessions %s)" % (failed, load["logins"]["failed"],
                                                                          load["sessions"]["failed"]))

    def report(self, one, two, load, t2):
        def at(t):
            return self.clock(t) if t else "never"
        lines = ["Verona, the shop's outage replayed (%s; deploy at 10:00:00, clock from there)"
                 % ("short" if SHORT else "full")]
        lines += ["  %s  %s" % (self.clock(t), text) for t, text in self.timeline]
        rb = one["fired"].get("VeronaRolloutRolledBack")
        lines.append("Summary: leaking build rolled back by Verona at %s (reload --wait exit %s); memory alert fired "
                     "%s, resolved %s; rollback alert fired %s, resolved %s. Slow leak: recycled at %s, memory "
                     "alert fired %s. Failed requests: logins %s of %s, session checks %s of %s."
                     % (at(one["rolled_back_at"]), one["reload_rc"],
                        at(one["fired"].get("VeronaWorkerMemoryGrowing")),
                        at(one["resolved"].get("VeronaWorkerMemoryGrowing")), at(rb),
                        at(one["resolved"].get("VeronaRolloutRolledBack")), at(two["memory_restarts"]),
                        at(two["fired"].get("VeronaWorkerMemoryGrowing")), load["logins"]["failed"],
                        load["logins"]["requests"], load["sessions"]["failed"], load["sessions"]["requests"]))
        text = "\n".join(lines) + "\n"
        print(text, end="")
        os.makedirs(os.path.join(ROOT, "var"), exist_ok=True)
        with open(os.path.join(ROOT, "var", "replay%s.txt" % ("-short" if SHORT else "")), "w") as f:
            f.write(text)

    def cleanup(self):
        self.ctl("stop")
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["sh", "deploy/pg.sh", "stop", self.pg], cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if os.environ.get("VERONA_KEEP_TMP"):
            self.say("kept " + self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def on_term(signum, frame):
    raise KeyboardInterrupt  # cleanup runs in main's finally


def main():
    signal.signal(signal.SIGTERM, on_term)
    r = Replay()
    rc = 0
    try:
        r.run()
    except (Failed, subprocess.CalledProcessError) as e:
        print("replay: FAILED: %s" % e, file=sys.stderr)
        try:
            with open(r.log) as f:
                tail = f.readlines()[-15:]
            print("replay: last lines of the supervisor's log:\n" + "".join(tail), file=sys.stderr)
        except OSError:
            pass
        rc = 1
    finally:
        r.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
