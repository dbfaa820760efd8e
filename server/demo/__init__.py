"""``orchestrator demo``: the seed's patterns 1, 2 and 3 against built-in local servers, offline.

It serves the demo sites (``server.demo.sites``, with pattern 3's APIs from
``server.demo.accounts``), an IMAP server (``server.demo.inbox``) and a local stand-in model
(``server.standin_model``) on 127.0.0.1, then runs three shipped documents with the live
progress display: pattern 1 collects from three sites at once in Chromium (one of them behind a
login whose credentials come from a vault) and aggregates; pattern 2 — the document of
``examples/pattern2_content_pipeline.yaml`` — fetches its sources, writes, edits and optimizes
a post with three model calls (the stand-in: the demo says so), then publishes it to three
WordPress-style sites in parallel; pattern 3 — the document of
``examples/pattern3_account_checks.yaml`` — checks the inbox over IMAP, updates a profile with an
API key and posts through an OAuth2 API whose first token has expired (refreshed, sent again),
then sums up, and notifies the demo's receiver. The demo's credentials (the sites' logins, the
model key, the application passwords, the mailbox password, the OAuth2 client secret and
refresh token, the API key) live in an in-memory vault, so the user's own vault is never
touched. Without a browser, pattern 1 is skipped with a note saying how to install one, and
patterns 2 and 3 still run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from multi_task_orchestrator.engine import (
    BrowserNotFound,
    BrowserSettings,
    Engine,
    Network,
    Redactor,
    RunSnapshot,
    RunStatus,
    TaskError,
    find_browser,
    host_allowed,
    load_file,
    locate_browser,
    render_summary,
    run_files,
)
from multi_task_orchestrator.server.build import build_engine
from multi_task_orchestrator.server.demo.accounts import (
    PROFILE_API_KEY,
    SOCIAL_CLIENT_SECRET,
    SOCIAL_REFRESH_TOKEN,
)
from multi_task_orchestrator.server.demo.content import WP_SECRETS, WP_USER
from multi_task_orchestrator.server.demo.inbox import INBOX_PASSWORD, DemoInbox
from multi_task_orchestrator.server.demo.sites import DEMO_PASSWORD, DEMO_USER, DemoSites
from multi_task_orchestrator.server.standin_model import StandinModel

if TYPE_CHECKING:  # the model with the runners' fields is built when first used
    from multi_task_orchestrator.server.settings import Settings

DOCUMENTS = Path(__file__).parent
PATTERN_1 = DOCUMENTS / "pattern1_collect.yaml"
PATTERN_2 = DOCUMENTS / "pattern2_content.yaml"
PATTERN_3 = DOCUMENTS / "pattern3_accounts.yaml"
MODEL_KEY = "demo-standin-key"  # what the demo's vault holds for the stand-in model
# pattern 3's credentials, by the names its document uses
ACCOUNT_SECRETS = {
    "INBOX_PASSWORD": INBOX_PASSWORD,
    "SOCIAL_CLIENT_SECRET": SOCIAL_CLIENT_SECRET,
    "SOCIAL_REFRESH_TOKEN": SOCIAL_REFRESH_TOKEN,
    "PROFILE_API_KEY": PROFILE_API_KEY,
}

# Starts a run (calling its second argument, which saves the run and gives its id) and
# follows it to its end; the CLI's makes Ctrl-C cancel it.
Follow = Callable[[Engine, Callable[[], Awaitable[str]]], Awaitable[RunSnapshot]]


class DemoSecrets:
    """An in-memory vault for the demo's credentials (bound to the demo's host, redacted)."""

    def __init__(self, secrets: dict[str, str], allowed_hosts: list[str]) -> None:
        self._secrets = {name: (value, list(allowed_hosts)) for name, value in secrets.items()}
        self._redactor = Redactor(secrets.values())

    async def resolve(self, name: str, *, host: str | None) -> str:
        if name not in self._secrets:  # e.g. an OAuth2 token not fetched yet
            raise TaskError(f"no secret named '{name}' in the demo's vault", "config")
        value, hosts = self._secrets[name]
        if host is None or not host_allowed(host, hosts):
            raise TaskError(f"secret '{name}' is not allowed for host {host} ({hosts})", "config")
        return value

    def names(self) -> Collection[str]:
        return set(self._secrets)

    def redact(self, text: str) -> str:
        return self._redactor.redact(text)

    async def store(
        self, name: str, value: str, *, allowed_hosts: list[str], description: str | None = None
    ) -> None:
        self._secrets[name] = (value, list(allowed_hosts))
        self._redactor = Redactor(value for value, _ in self._secrets.values())


@dataclass(frozen=True, slots=True)
class DemoPlan:
    documents: list[Path]
    skipped: str | None  # why pattern 1 does not run, when it does not


async def plan(browser: BrowserSettings) -> DemoPlan:
    """The three patterns, or patterns 2 and 3 with the reason, when no browser can be found."""
    try:
        if browser.candidates is None:
            await locate_browser(browser.path)
        else:
            find_browser(browser.path, browser.candidates)
    except BrowserNotFound as exc:
        return DemoPlan([PATTERN_2, PATTERN_3], f"pattern 1 skipped: {exc}")
    return DemoPlan([PATTERN_1, PATTERN_2, PATTERN_3], None)


async def run_demo(settings: Settings, out: Console, follow: Follow) -> int:
    """Serve the sites and the stand-in model, run the patterns one after the other, print
    each summary.

    The engine is the one the settings describe, except that attempts run in this process
    (the sites and the in-memory credentials live here) under the default network policy (the
    sites are on loopback, which a user's policy may refuse for their own documents), and
    ``notify: true`` goes to the demo's own receiver.
    """
    settings = settings.model_copy(update={"backend": "local"})
    demo = await plan(settings.runner_setting(BrowserSettings))
    if demo.skipped:
        out.print(demo.skipped, markup=False)
    worst = 0
    async with (
        DemoSites() as sites,
        DemoInbox() as inbox,
        StandinModel(keys=frozenset({MODEL_KEY})) as model,
    ):
        secrets = DemoSecrets(
            {
                "DEMO_USER": DEMO_USER,
                "DEMO_PASSWORD": DEMO_PASSWORD,
                "LLM_API_KEY": MODEL_KEY,
                **WP_SECRETS,
                **ACCOUNT_SECRETS,
            },
            allowed_hosts=["127.0.0.1"],
        )
        settings = settings.model_copy(update={"notify_url": notify_url(sites.url)})
        async with build_engine(settings, secrets=secrets, network=Network()) as built:
            engine = built.engine
            for document in demo.documents:
                source = load_file(document)
                extra = {"base": sites.url}
                if document == PATTERN_2:
                    extra = pattern_2_vars(sites.url, model.url)
                if document == PATTERN_3:
                    extra = pattern_3_vars(sites.url, inbox.port)
                orchestration = engine.validate(
                    source, extra_vars=extra, require_runners=True
                ).raise_for_errors()
                out.print(f"\n▶ {orchestration.name}", markup=False)
                if document == PATTERN_2:
                    out.print(stand_in_note(model), markup=False)

                async def start(orchestration: Any = orchestration) -> str:
                    run_id, _ = await engine.start(orchestration, source_name="demo")
                    return run_id

                snapshot = await follow(engine, start)
                full = await engine.snapshot(snapshot.id, include_outputs=True)
                out.print(render_summary(full, run_files(snapshot.run_dir)), markup=False)
                if snapshot.status != RunStatus.succeeded:
                    worst = 1
                if snapshot.status == RunStatus.cancelled:
                    break  # Ctrl-C: the patterns after it do not run
        if PATTERN_2 in demo.documents:
            published = sites.state.published_count()
            out.print(f"\nThe demo sites received {published} published post(s).", markup=False)
        out.print(accounts_note(sites), markup=False)
    return worst


def pattern_2_vars(sites: str, model: str) -> dict[str, str]:
    """Pattern 2's vars for the demo: its sources, model and WordPress sites, all local."""
    return {
        "sources_base": sites,
        "base_url": model,
        "wp_user": WP_USER,
        "site_a": f"{sites}/wp/site-a",
        "site_b": f"{sites}/wp/site-b",
        "site_c": f"{sites}/wp/site-c",
        "post_status": "publish",
    }


def pattern_3_vars(sites: str, imap_port: int) -> dict[str, str]:
    """Pattern 3's vars for the demo: its inbox, token endpoint and APIs, all local."""
    return {
        "imap_host": "127.0.0.1",
        "imap_port": str(imap_port),
        "imap_security": "plain",
        "token_url": f"{sites}/oauth/token",
        "social_api": f"{sites}/social/api",
        "profile_api": f"{sites}/profile/api",
    }


def notify_url(sites: str) -> str:
    """The demo's notification receiver, as a channel URL."""
    return f"webhook+{sites}/notifications"


def accounts_note(sites: DemoSites) -> str:
    """What pattern 3's servers saw: tokens issued, posts refused and received, notifications."""
    accounts = sites.state.accounts
    return (
        f"The demo's token endpoint issued {len(accounts.grants)} access token(s); its social "
        f"API refused {accounts.refused} as expired\nand received {len(accounts.posts)} "
        f"post(s); its profile API took {accounts.profile_updates} update(s); its notification "
        f"receiver got {len(accounts.notifications)}."
    )


def stand_in_note(model: StandinModel) -> str:
    """What the demo says before pattern 2: its model is not a real one."""
    return (
        f"The model in this pattern is a local stand-in, not a real one ({model.url}): its\n"
        "answers are canned, not generated; token counts are estimates, priced as the model\n"
        "named. With a key in your vault, examples/pattern2_content_pipeline.yaml runs the same\n"
        "pipeline against a real model."
    )


async def serve_sites(out: Console) -> int:
    """Serve the demo sites and inbox until Ctrl-C, for running the examples against them by
    hand."""
    async with DemoSites() as sites, DemoInbox() as inbox:
        out.print(
            f"demo sites at {sites.url}, demo IMAP server at 127.0.0.1:{inbox.port} "
            "(Ctrl-C to stop)",
            markup=False,
        )
        out.print(
            f"e.g. orchestrator run examples/seed_pattern1_local.yaml --var base={sites.url}",
            markup=False,
        )
        out.print(pattern_3_howto(sites.url, inbox.port), markup=False)
        with suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    return 0


def pattern_3_howto(sites: str, imap_port: int) -> str:
    """How to run pattern 3's example against the served demo: its secrets, its vars."""
    store = [
        f"  printf %s '{value}' | orchestrator vault set {name} --hosts 127.0.0.1"
        for name, value in ACCOUNT_SECRETS.items()
    ]
    shown = ("imap_port", "token_url", "social_api", "profile_api")  # the others: as written
    given = " ".join(f"--var {name}={pattern_3_vars(sites, imap_port)[name]}" for name in shown)
    return "\n".join(
        [
            "pattern 3: store the demo's (made-up) credentials in your vault, then run it:",
            *store,
            f"  ORCHESTRATOR_NOTIFY_URL={notify_url(sites)} \\",
            f"  orchestrator run examples/pattern3_account_checks.yaml {given}",
        ]
    )
