"""The edit-job buttons and the jobs area, under the details panel of the Explore page.

The buttons turn the selected sample (and its manual neighbours) plus a few typed
parameters into a `job_commands.JobRequest`; `job_commands.build_commands` checks every value against
the lake and `jobs.start_job` runs it outside this script. Nothing typed in the browser
becomes a path, a flag or code. Only a browser on the explorer's own machine may start
jobs (`is_local`, from the request's IP and Host header through `st.context`); the
explorer's `--read-only` flag removes this whole section.

The jobs area reads the lake's job folder on every run (any session sees any job), polls
it every second while a job runs, and reruns the whole page when a job this session saw
running has finished: the lake's new commit then brings the placed samples onto the map.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from explorer import common, job_commands, jobs
from explorer.frames import EmbeddingFrame
from explorer.session import LakeSession
from explorer.state import ViewState
from lake.layout import GENERATION_GROUP, activations_group, analysis_group

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
JOBS_SEEN = "jobs_seen"  # job id -> the state this browser session last saw it in
MASK_SIDE = 8  # the mask grid: the bottleneck's 8x8 map
POLL_SECONDS = 1.0
LABELS = {
    "regenerate": "Regenerate",
    "variations": "Variations",
    "class-swap": "Class swap",
    "interpolate": "Interpolate",
    "neighbours": "From neighbours",
    "from-real": "From real",
}
HELP = {
    "regenerate": "the same (seed, index, class, model) again; must reproduce the stored image bit for bit",
    "variations": "N new noise draws (from the seed), same class (of a real sample: its class, by the lake's probe model)",
    "class-swap": "the same noise, the class chosen above",
    "interpolate": "N steps between the selection and its one manual neighbour (slerp of the noise, lerp of the class)",
    "neighbours": "at the layer, replace the block's output by the mean of the selection's and its manual neighbours' outputs "
    "(optionally inside the mask / in the channels), then finish the forward pass",
    "from-real": "noise the real image at sigma and denoise it in one step",
}


def request_origin() -> tuple[str | None, str]:
    """(remote IP, Host header) of this browser session's connection; Streamlit gives no IP for localhost.

    A server connection always carries text; anything else (no client at all, as in a bare
    run or Streamlit's AppTest) reads as no connection.
    """
    try:
        host = st.context.headers.get("Host")
    except Exception:  # no request at all
        host = None
    ip = st.context.ip_address
    return (ip if isinstance(ip, str) else None), (host if isinstance(host, str) else "")


def is_local(ip: str | None, host: str) -> bool:
    """Whether a connection comes from this machine: a loopback IP (or none) and a loopback Host header.

    The Host check refuses a page served to another origin that points at localhost (DNS
    rebinding); no Host header means no HTTP request at all (a bare run).
    """
    if ip is not None and ip not in LOCAL_HOSTS:
        return False
    if not host:
        return True
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8501
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    return name in LOCAL_HOSTS


def lake_facts(session: LakeSession) -> job_commands.LakeFacts:
    """What job requests are checked against, read once per lake commit."""

    def compute() -> job_commands.LakeFacts:
        lake = session.lake
        layers = tuple(sorted(set(lake.generation_layers()) | set(lake.activation_layers())))
        channels: dict[str, int] = {}
        for layer in layers:
            for group in (f"{GENERATION_GROUP}/{layer}", activations_group(layer)):
                shape = lake.shape(group, "channel")
                if shape:
                    channels[layer] = int(shape[0])
                    break
        keys = tuple(dict.fromkeys(e.key for e in session.embeddings if lake.has(analysis_group("pca", e.key))))

        def exists(ids: Any) -> list[bool]:
            return [bool(r >= 0) for r in session.sample_rows(list(ids))]

        def sources(ids: Any) -> list[str]:
            rows = session.sample_rows(list(ids))
            found = rows[rows >= 0]
            values = iter(session.sample_sources(found))
            return [str(next(values)) if r >= 0 else "" for r in rows]

        # Absolute: the driver runs from the repository root, whatever directory the explorer was started in.
        return job_commands.LakeFacts(Path(session.path).resolve(), exists, sources, layers, channels, keys)

    return session.memo("job_facts", compute)


def jobs_section(session: LakeSession, frame: EmbeddingFrame, view: ViewState, row: int) -> None:
    """The edit buttons for the selected sample (local sessions only) and the lake's jobs."""
    st.divider()
    st.subheader("Edit jobs")
    ip, host = request_origin()
    if not is_local(ip, host):
        st.info(
            f"Edit jobs can only be started from a browser on the explorer's own machine (localhost); "
            f"this session comes from {ip or host}. The map and the jobs below stay visible.",
            icon=":material/lock:",
        )
    elif row < 0 or int(frame.sample_row[row]) < 0:
        st.caption("Select a sample on the map to regenerate it, draw variations, swap its class, or blend it with its manual neighbours.")
    elif (why := job_commands.t2i_refusal(_parents(view), frame.info.key)) is not None:
        st.caption(f"No edit jobs here: {common.markdown_text(why)}.")
    else:
        _job_form(session, frame, view, row)
    _jobs_area(str(session.path))


def _parents(view: ViewState) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in (view.selected, *view.manual) if i))


def _unavailable(op: str, sources: list[str]) -> str | None:
    """Why an operation does not apply to the selection (None: it does); the job checks it again."""
    first, generated = sources[0], all(s == "generated" for s in sources)
    if op == "variations":
        return None  # of a generated sample: its class and model; of a real one: its class, by the lake's probe model
    if op in ("regenerate", "class-swap"):
        return None if first == "generated" else "needs a generated sample selected"
    if op == "interpolate":
        return None if len(sources) == 2 and generated else "needs a generated sample and exactly one generated manual neighbour"
    if op == "neighbours":
        if first != "generated":
            return "needs a generated sample selected (its noise and class start the pass)"
        return None if len(sources) >= 2 else "needs manual neighbours: click other points to add them"
    return None if first == "real" else "needs a real sample selected"


def _job_form(session: LakeSession, frame: EmbeddingFrame, view: ViewState, row: int) -> None:
    facts = lake_facts(session)
    parents = _parents(view)
    sources = facts.source_of(parents)
    key = frame.info.key
    st.caption(
        "On the selected sample" + (f" (with the {len(parents) - 1} of its manual set for blends)" if len(parents) > 1 else "")
        + f"; new samples are probed and placed in {common.markdown_text(key)}."
    )
    with st.form("edit_job", border=True):
        c1, c2, c3 = st.columns(3)
        n = c1.number_input("N", min_value=1, max_value=job_commands.MAX_N, value=8, step=1, key="job_n", help="samples (variations) or steps (interpolation), at most 64")
        seed = c2.number_input("seed", min_value=0, max_value=job_commands.MAX_SEED, value=0, step=1, key="job_seed", help="seed of the new noise draws (variations)")
        sigma = c3.number_input("sigma", min_value=0.01, max_value=job_commands.MAX_SIGMA, value=2.0, key="job_sigma", help="noise level of From real (and of real samples in a neighbour blend)")
        own_class = int(frame.class_id[row]) if 0 <= int(frame.class_id[row]) < 1000 else 0
        class_id = st.selectbox("class (class swap)", range(1000), index=own_class, format_func=session.classes.label, key="job_class")
        layers = list(facts.layers)
        layer = st.selectbox(
            "layer (from neighbours)",
            layers or ["(the lake has no layers)"],
            index=layers.index(frame.info.layer) if frame.info.layer in layers else 0,
            key="job_layer",
            disabled=not layers,
        )
        channels_text = st.text_input("channels (from neighbours)", key="job_channels", placeholder="all; or e.g. 0,5,9 or 0-15")
        with st.expander(f"mask over the layer's {MASK_SIDE}x{MASK_SIDE} map (from neighbours; none ticked: everywhere)"):
            for y in range(MASK_SIDE):
                cells = st.columns(MASK_SIDE, gap="small")
                for x in range(MASK_SIDE):
                    cells[x].checkbox(f"cell {y},{x}", key=f"job_mask_{y}_{x}", label_visibility="collapsed")
        pressed: dict[str, bool] = {}
        for group in (job_commands.OPERATIONS[:3], job_commands.OPERATIONS[3:]):
            for col, op in zip(st.columns(3), group):
                reason = _unavailable(op, sources)
                pressed[op] = col.form_submit_button(
                    LABELS[op], key=f"job_{op}", disabled=reason is not None, help=reason or HELP[op], width="stretch"
                )
    chosen = next((o for o, on in pressed.items() if on), None)
    if chosen is None:
        return
    mask = "".join("1" if st.session_state.get(f"job_mask_{y}_{x}") else "0" for y in range(MASK_SIDE) for x in range(MASK_SIDE))
    try:
        request = job_commands.JobRequest(
            operation=chosen,
            parents=parents if chosen in ("interpolate", "neighbours") else parents[:1],
            key=key,
            n=int(n),
            seed=int(seed),
            class_id=int(class_id),
            layer=str(layer) if layers else "",
            mask=mask if "1" in mask else "",
            channels=job_commands.parse_channels(channels_text or ""),
            sigma=float(sigma),
        )
        start(session, request)
    except job_commands.JobRefused as exc:
        st.warning(f"Not started: {exc}", icon=":material/block:")
        return
    st.toast(f"Started {LABELS[chosen]}", icon=":material/play_arrow:")


def start(session: LakeSession, request: job_commands.JobRequest) -> jobs.JobStatus:
    """Check the request (origin, values) and start its job; JobRefused with the reason otherwise."""
    if not is_local(*request_origin()):  # checked again at the moment of starting, not only when drawing the buttons
        raise job_commands.JobRefused("edit jobs can only be started from a browser on the explorer's own machine")
    commands = job_commands.build_commands(request, lake_facts(session))
    status = jobs.start_job(session.path, request, commands)
    st.session_state.setdefault(JOBS_SEEN, {})[status.job_id] = status.state
    return status


def _jobs_area(lake: str) -> None:
    running = jobs.running_job(lake) is not None
    # Polls only while a job runs; a fragment rerun redraws this area alone, not the map.
    st.fragment(run_every=POLL_SECONDS if running else None)(_jobs_list)(lake)


def _jobs_list(lake: str) -> None:
    found = jobs.list_jobs(lake)
    seen: dict[str, str] = st.session_state.setdefault(JOBS_SEEN, {})
    finished_now = False
    if not found:
        st.caption("No jobs yet on this lake.")
    for i, job in enumerate(found):
        what = f"**{LABELS.get(job.operation, job.operation)}** of " + ", ".join(f"`{p}`" for p in job.parents[:3])
        what += f" and {len(job.parents) - 3} more" if len(job.parents) > 3 else ""
        elapsed = (job.finished or time.time()) - job.started
        if job.state == jobs.RUNNING:
            progress = (job.step + 0.5) / max(len(job.commands), 1)
            st.progress(min(progress, 0.99), text=f"{what} · {job.step_text()} · {elapsed:.0f} s")
            if is_local(*request_origin()) and st.button("Stop this job", key=f"stop_{job.job_id}", help="stops the running command: what it had not committed is rolled back, and the same edit can be started again"):
                jobs.cancel_job(lake, job.job_id)
            line = jobs.last_line(jobs.job_output(lake, job.job_id, 1000))
            if line:
                st.caption(common.markdown_text(line))
        elif job.state == jobs.DONE:
            note = f" · {common.markdown_text(job.message)}" if job.message else ""
            (st.success if i == 0 else st.caption)(f"{what}: done in {elapsed:.0f} s{note}")
        elif i == 0:  # the latest job failed: its one-line error
            st.error(f"{what} failed: {common.markdown_text(job.message)}", icon=":material/error:")
            with st.expander("its output"):
                st.code(jobs.job_output(lake, job.job_id), language=None)
        else:
            st.caption(f"{what}: failed ({common.markdown_text(job.message)})")
        if seen.get(job.job_id) == jobs.RUNNING and job.state != jobs.RUNNING:
            finished_now = True
        seen[job.job_id] = job.state
    if finished_now:
        st.rerun()  # the whole page: the lake's new commit brings the placed samples onto the map
