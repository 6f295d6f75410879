#!/usr/bin/env python3
"""tests/browser/status_page.py - the status page (GET / on metrics_listen,
supervisor/status_page.c) in a real headless browser: Debian's chromium
driven by chromium-driver through python3-selenium (make check).

Against a real `verona serve` (3 workers) and its private PostgreSQL:
- the page loads with no console error (no script, no blocked resource)
  and shows exactly the workers `verona ctl status` shows;
- a worker killed with SIGKILL disappears from it and its replacement
  appears;
- a rollout shows on it with its progress, until it is done.

usage: status_page.py BIN_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "release", "bin"))
BASE = int(os.environ.get("BROWSER_TEST_PORT", "18950"))
PORT, METRICS, PGPORT = BASE, BASE + 1, BASE + 2


class Failed(Exception):
    pass


def wait(cond, seconds, what):
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.3)
    raise Failed("not within %d s: %s" % (seconds, what))


class Test:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="verona-browser.")
        os.chmod(self.tmp, 0o755)
        self.sock = os.path.join(self.tmp, "verona.sock")
        self.env = dict(os.environ)
        self.serve = None
        self.driver = None
        self.checks = 0

    def ok(self, text):
        self.checks += 1
        print("browser: ok %d - %s" % (self.checks, text), flush=True)

    def ctl_status(self):
        r = subprocess.run([os.path.join(BIN, "verona"), "ctl", "-s", self.sock, "status", "--json"], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def start(self):
        env = dict(self.env, VERONA_PG_PORT=str(PGPORT), VERONA_PG_FSYNC="off")
        url = subprocess.run(["sh", "deploy/pg.sh", "start", os.path.join(self.tmp, "pg")], cwd=ROOT, env=env,
                             check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        self.env["VERONA_DATABASE_URL"] = url
        subprocess.run([os.path.join(BIN, "verona"), "migrate"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        shutil.copy(os.path.join(BIN, "verona-worker"), os.path.join(self.tmp, "worker"))
        conf = os.path.join(self.tmp, "verona.conf")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:%d\nworkers = 3\nadmin_socket = %s\nmetrics_listen = 127.0.0.1:%d\n"
                    "worker_binary = %s\nprobation_ms = 3000\nhealth_interval_ms = 200\n"
                    "argon2_memlimit_kib = 8192\nargon2_opslimit = 1\n"
                    % (PORT, self.sock, METRICS, os.path.join(self.tmp, "worker")))
        log = open(os.path.join(self.tmp, "serve.log"), "w")
        self.serve = subprocess.Popen([os.path.join(BIN, "verona"), "serve", "-c", conf], env=self.env, stdout=log,
                                      stderr=log)
        wait(lambda: (self.ctl_status() or {}).get("totals", {}).get("ready") == 3, 30, "3 ready workers")

        opts = Options()
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--user-data-dir=" + os.path.join(self.tmp, "chromium")):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        self.driver.set_page_load_timeout(20)

    def page_pids(self):
        """Loads the page afresh; the pids of its worker rows."""
        self.driver.get("http://127.0.0.1:%d/" % METRICS)
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#workers tr.worker")
        return sorted(int(r.get_attribute("data-pid")) for r in rows if r.get_attribute("data-pid"))

    def console_errors(self):
        return [e for e in self.driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]

    def ctl_pids(self):
        return sorted(w["pid"] for w in self.ctl_status()["workers"] if w.get("pid"))

    def run(self):
        self.start()
        pids = self.page_pids()
        if self.driver.title != "Verona status":
            raise Failed("title %r" % self.driver.title)
        errors = self.console_errors()
        if errors:
            raise Failed("console errors: %s" % errors)
        self.ok("the page loads with no console error")
        if len(self.driver.find_elements(By.TAG_NAME, "script")) != 0:
            raise Failed("the page has a script")
        charts = self.driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        if len(charts) != 3 + 2:
            raise Failed("%d charts, not one a slot (3) and two for the pool" % len(charts))
        self.ok("no script; %d inline SVG charts (RSS of each slot, requests, errors)" % len(charts))
        if pids != self.ctl_pids():
            raise Failed("page shows %s, ctl status %s" % (pids, self.ctl_pids()))
        self.ok("the page shows the workers ctl status shows: %s" % pids)

        victim = pids[1]
        os.kill(victim, signal.SIGKILL)

        def replaced():
            shown = self.page_pids()
            return len(shown) == 3 and victim not in shown and shown == self.ctl_pids() and shown
        shown = wait(replaced, 20, "the killed worker %d replaced on the page" % victim)
        self.ok("worker %d killed: gone from the page, its replacement %s on it"
                % (victim, sorted(set(shown) - set(pids))))

        # A rollout: a new build (the same program, other bytes).
        worker = os.path.join(self.tmp, "worker")
        shutil.copy(worker, worker + ".new")
        with open(worker + ".new", "ab") as f:
            f.write(b"\nnew build\n")
        os.rename(worker + ".new", worker)
        subprocess.run([os.path.join(BIN, "verona"), "ctl", "-s", self.sock, "reload"], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        seen = set()

        def rollout_state():
            self.driver.get("http://127.0.0.1:%d/" % METRICS)
            el = self.driver.find_element(By.ID, "rollout")
            state = el.get_attribute("data-state")
            if state == "rolling":
                seen.add(self.driver.find_element(By.ID, "rollout-progress").text)
            return state == "done" and state
        wait(rollout_state, 60, "the rollout shown as done")
        if not any(t.endswith("of 3 slots") for t in seen):
            raise Failed("the rollout's progress was never shown (saw %s)" % seen)
        self.ok("a rollout shows on the page while it runs (%s) and when it is done" % ", ".join(sorted(seen)))
        errors = self.console_errors()
        if errors:
            raise Failed("console errors: %s" % errors)
        self.ok("still no console error after %d loads" % (len(seen) + 10))

    def cleanup(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            except WebDriverException:
                pass
        if self.serve is not None and self.serve.poll() is None:
            self.serve.terminate()
            try:
                self.serve.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.serve.kill()
        subprocess.run(["sh", "deploy/pg.sh", "stop", os.path.join(self.tmp, "pg")], cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    t = Test()
    try:
        t.run()
    except (Failed, WebDriverException, subprocess.CalledProcessError) as e:
        print("browser: FAILED: %s" % e, file=sys.stderr)
        try:
            with open(os.path.join(t.tmp, "serve.log")) as f:
                print("".join(f.readlines()[-10:]), file=sys.stderr)
        except OSError:
            pass
        return 1
    finally:
        t.cleanup()
    print("browser: %d checks passed" % t.checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
