"""Dispatching planned campaign rows to the simulator on PostgreSQL: rows per second and peak memory.

- N planned rows (`--rows`, default 100 000; `--persons 1000000` for the 1 M run) written straight
  into `campaign_target`, with their identifiers (external_userid / openid / encrypted phone):
  `--oa-share` and `--sms-share` of them OA template messages and SMS, the rest WeCom customers of
  `--per-guide` customers per guide (one add_msg_template call per guide).
- The simulator runs in this
  process; each measurement runs in a child process (its own peak memory: VmHWM).
- Baseline, same run: the same calls posted straight to the simulator (one add_msg_template per
  guide with the same external_userids, one template/send per OA row and one SMS per SMS row, at
  the sender's concurrency) — the floor set by loopback HTTP and the simulator itself.
- Then `CampaignSender` (`--processes` of them) sends everything: claims, re-checks (opt-out, cap,
  quiet hours disabled so a night run measures the same), batches, outcomes.

    python bench/campaign_dispatch.py                 # 100 000 rows
    python bench/campaign_dispatch.py --persons 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bot.simulator.server import TencentSimulator  # noqa: E402
from profile_store.bulk import stage  # noqa: E402
from profile_store.db import Database  # noqa: E402
from profile_store.pii import PiiVault  # noqa: E402

SECRET = "bench-secret-key-for-pii-0123456789abcdef"
TEMPLATE = "TPL_BENCH"
SHANGHAI = ZoneInfo("Asia/Shanghai")




from campaign_plan import hwm_mb  # noqa: E402  (bench/ is on sys.path)


def fresh_pg(admin_url: str, name: str) -> str:
    from importing import fresh_pg as recreate

    return recreate(admin_url, name)


async def seed(url: str, sim: TencentSimulator, args: argparse.Namespace, plan_file: Path) -> dict[str, Any]:
    """Persons, identifiers, one campaign and its planned rows; the simulator's contacts; the
    baseline's calls (written to `plan_file`)."""
    started = time.monotonic()
    db = Database(url)
    await db.migrate()
    vault = PiiVault(SECRET)
    n = args.rows
    n_oa, n_sms = int(n * args.oa_share), int(n * args.sms_share)
    n_wecom = n - n_oa - n_sms
    due = datetime.now(UTC) - timedelta(minutes=1)
    nodes: list[tuple[Any, ...]] = []
    targets: list[tuple[Any, ...]] = []
    batches: dict[str, list[str]] = {}
    openids: list[str] = []
    phones: list[str] = []
    for i in range(n):
        person = f"p{i:08d}"
        if i < n_wecom:
            guide = f"g{i // args.per_guide:05d}"
            external = f"wm{i:012d}"
            if guide not in batches:
                sim.add_staff(guide)
                batches[guide] = []
            sim.wecom.add_external_contact(external, follow_userid=guide)
            batches[guide].append(external)
            nodes.append(("external_userid", external, person, False, None))
            targets.append((1, 0, person, "A", "wecom", guide, "", "planned", due, None, 0, None, None, ""))
        elif i < n_wecom + n_oa:
            openid = f"o{i:012d}"
            sim.oa.add_follower(sim.oa_app_id, openid)
            openids.append(openid)
            nodes.append(("openid", f"{sim.oa_app_id}/{openid}", person, False, None))
            targets.append((1, 0, person, "A", "oa_template", "", "", "planned", due, None, 0, None, None, ""))
        else:
            phone = f"13{i:09d}"
            phones.append(phone)
            nodes.append(("phone", vault.lookup_hash(phone), person, False, vault.encrypt(phone)))
            targets.append((1, 0, person, "A", "sms", "", "", "planned", due, None, 0, None, None, ""))
    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO campaign (id, name, kind, segment, reading, variants, channel, waves, control_pct,"
                " attribution_days, status, created_by, created_at, confirmed_by) VALUES (1, 'bench', 'campaign',"
                " '{}', '', :v, 'any', '[]', 10, 7, 'running', 'bench', now(), 'bench')"
            ),
            {"v": json.dumps([{"name": "A", "content": "周年庆满300减50"}], ensure_ascii=False)},
        )
        await stage(session, "identity_node", ["kind", "value", "person_id", "shared", "sealed"], nodes)
        await stage(
            session, "campaign_target",
            ["campaign_id", "wave", "person_id", "variant", "channel", "guide_id", "store_id", "outcome", "due_at",
             "claimed_until", "attempts", "sent_at", "delivered_at", "last_error"],
            targets,
        )
    async with db.transaction() as session:
        await session.execute(text("ANALYZE"))
    await db.dispose()
    plan_file.write_text(json.dumps({"batches": batches, "openids": openids, "phones": phones}))
    return {"rows": n, "wecom": n_wecom, "oa_template": n_oa, "sms": n_sms, "guides": len(batches),
            "seed_s": round(time.monotonic() - started, 1)}


# ---------------------------------------------------------------------------------- child processes


async def child_baseline(args: argparse.Namespace) -> dict[str, Any]:
    plan = json.loads(Path(args.plan).read_text())
    start_hwm = hwm_mb()
    limit = asyncio.Semaphore(args.concurrency)
    calls = 0
    async with aiohttp.ClientSession() as http:
        base = args.sim_base
        wecom_auth = {"corpid": args.corp_id, "corpsecret": args.corp_secret}
        async with http.get(f"{base}/cgi-bin/gettoken", params=wecom_auth) as r:
            wecom_token = (await r.json())["access_token"]
        async with http.get(f"{base}/cgi-bin/token", params={"grant_type": "client_credential", "appid": args.oa_app,
                                                              "secret": args.oa_secret}) as r:
            oa_token = (await r.json())["access_token"]

        async def post(url: str, body: dict[str, Any], params: dict[str, str] | None = None) -> None:
            nonlocal calls
            async with limit, http.post(url, json=body, params=params) as resp:
                answer = await resp.json()
                calls += 1
                if answer.get("errcode", answer.get("code", 0)) != 0:
                    raise RuntimeError(answer)

        t0 = time.monotonic()
        for guide, externals in plan["batches"].items():  # one mass send at a time, as the sender
            await post(f"{base}/cgi-bin/externalcontact/add_msg_template", {
                "chat_type": "single", "external_userid": externals, "sender": guide,
                "text": {"content": "周年庆满300减50"}}, {"access_token": wecom_token})
        await asyncio.gather(
            *(post(f"{base}/cgi-bin/message/template/send", {"touser": o, "template_id": TEMPLATE,
                   "data": {"content": {"value": "周年庆满300减50"}}}, {"access_token": oa_token})
              for o in plan["openids"]),
            *(post(f"{base}/sim/sms/send", {"phone": p, "text": "周年庆满300减50"}) for p in plan["phones"]),
        )
        seconds = time.monotonic() - t0
    rows = sum(len(v) for v in plan["batches"].values()) + len(plan["openids"]) + len(plan["phones"])
    return {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds), "calls": calls,
            "hwm_mb_start": round(start_hwm), "hwm_mb_peak": round(hwm_mb())}


async def child_dispatch(args: argparse.Namespace) -> dict[str, Any]:
    from bot.tencent.wechat import OfficialAccountClient
    from bot.tencent.wecom import WeComClient
    from campaigns.dispatch import CampaignSender, SendParams
    from campaigns.sms import SimulatorSms
    from profile_store import campaign_outbox as co

    start_hwm = hwm_mb()
    db = Database(args.url)
    async with aiohttp.ClientSession() as http:
        wecom = WeComClient(http, db, base_url=args.sim_base, corp_id=args.corp_id, secret=args.corp_secret,
                            agent_id=args.agent_id, max_retries=1)
        oa = {args.oa_app: OfficialAccountClient(http, db, base_url=args.sim_base, app_id=args.oa_app,
                                                 secret=args.oa_secret, max_retries=1)}
        sender = CampaignSender(
            db, wecom=wecom, oa=oa, sms=SimulatorSms(http, args.sim_base), vault=PiiVault(SECRET),
            params=SendParams(oa_template_id=TEMPLATE, claim_batch=args.claim_batch, concurrency=args.concurrency,
                              quiet_hours="off"),
        )
        t0 = time.monotonic()
        rounds = 0
        while True:
            handled = await sender.run_once()
            rounds += 1
            if handled:
                continue
            async with db.read() as session:
                left = await co.outcome_counts(session, 1)
            if not left.get("planned") and not left.get("sending"):
                break
            await asyncio.sleep(0.1)
        seconds = time.monotonic() - t0
    await db.dispose()
    return {"seconds": round(seconds, 2), "calls": sender.calls, "rounds": rounds,
            "hwm_mb_start": round(start_hwm), "hwm_mb_peak": round(hwm_mb())}


def child_main(args: argparse.Namespace) -> None:
    run = child_baseline if args.child == "baseline" else child_dispatch
    if os.environ.get("QIANMIAN_BENCH_PROFILE") and args.child == "dispatch":
        import cProfile
        import pstats

        profile = cProfile.Profile()
        result = profile.runcall(asyncio.run, run(args))
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    else:
        result = asyncio.run(run(args))
    print(json.dumps(result))


# ---------------------------------------------------------------------------------- parent


async def run_child(kind: str, url: str, sim: TencentSimulator, args: argparse.Namespace, plan: Path) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--child", kind, "--url", url, "--sim-base", sim.base_url, "--corp-id", sim.corp_id,
        "--corp-secret", sim.corp_secret, "--agent-id", sim.agent_id, "--oa-app", sim.oa_app_id,
        "--oa-secret", sim.oa_app_secret, "--plan", str(plan), "--claim-batch", str(args.claim_batch),
        "--concurrency", str(args.concurrency),
    ]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
                                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def parent(args: argparse.Namespace, url: str) -> dict[str, Any]:
    result: dict[str, Any] = {"database": "postgresql"}
    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "plan.json"
        async with TencentSimulator() as sim:
            result["seed"] = await seed(url, sim, args, plan)
            result["baseline"] = await run_child("baseline", url, sim, args, plan)
            procs = [run_child("dispatch", url, sim, args, plan) for _ in range(args.processes)]
            t0 = time.monotonic()
            runs = await asyncio.gather(*procs)
            wall = time.monotonic() - t0
            db = Database(url)
            from profile_store import campaign_outbox as co

            async with db.read() as session:
                outcomes = await co.outcome_counts(session, 1)
            await db.dispose()
            rows = result["seed"]["rows"]
            wecom = Counter(r.external_userid for m in sim.wecom.group_msgs.values() for r in m.results)
            result["dispatch"] = {
                "processes": args.processes, "wall_s": round(wall, 2), "rows_per_s": round(rows / wall),
                "outcomes": outcomes, "per_process": runs,
                "hwm_mb_peak": max(r["hwm_mb_peak"] for r in runs),
                # every WeCom customer got the baseline's message and exactly one of ours
                "wecom_exactly_once": set(wecom.values()) == {2},
            }
            result["dispatch_vs_baseline"] = round(result["dispatch"]["wall_s"] / result["baseline"]["seconds"], 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--persons", type=int, help="alias of --rows (e.g. 1000000)")
    ap.add_argument("--per-guide", type=int, default=500)
    ap.add_argument("--oa-share", type=float, default=0.1)
    ap.add_argument("--sms-share", type=float, default=0.1)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--claim-batch", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--pg", default=os.environ.get("QIANMIAN_BENCH_PG", "postgresql://postgres@127.0.0.1:55432/postgres"))
    ap.add_argument("--out", help="also write the figures to this JSON file")
    for name in ("--child", "--url", "--sim-base", "--corp-id", "--corp-secret", "--agent-id", "--oa-app",
                 "--oa-secret", "--plan"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args)
        return
    if args.persons:
        args.rows = args.persons
    result = asyncio.run(parent(args, fresh_pg(args.pg, "qm_bench_dispatch")))
    text_ = json.dumps(result, ensure_ascii=False, indent=1)
    print(text_)
    if args.out:
        Path(args.out).write_text(text_)


if __name__ == "__main__":
    main()
