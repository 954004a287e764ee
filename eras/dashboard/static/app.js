// The dashboard's pages. Every number comes from this service's API (same origin); a token
// entered on a page is kept in sessionStorage and sent only with those requests.

const TOKEN_KEY = "eras.token";
const PERIODS = ["day", "week", "month", "year"];

// --- small helpers ------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const number = (value) => Number(value).toLocaleString("en-US");
const hours = (seconds) => Math.round((seconds / 3600) * 10) / 10;

function utcDay(offsetDays = 0) {
  const now = new Date();
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  day.setUTCDate(day.getUTCDate() + offsetDays);
  return day.toISOString().slice(0, 10);
}

// "2024-11-25T00:00:00.000Z" -> "2024-11-25": the UTC day a bucket starts on.
const periodDay = (period) => period.slice(0, 10);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// GET a route of this service; the token, if any, goes only here (a same-origin URL).
async function api(path, params = {}, token = null) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(url, { headers, credentials: "omit" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
  return body;
}

function query() {
  return new URLSearchParams(window.location.search);
}

// Keep the page's inputs in its address, so a view can be bookmarked or shared.
function remember(values) {
  const params = query();
  for (const [name, value] of Object.entries(values)) {
    if (value) params.set(name, value);
    else params.delete(name);
  }
  const search = params.toString();
  window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
}

function rendered() {
  document.body.dataset.state = "ready";
  document.body.dataset.renders = String(Number(document.body.dataset.renders) + 1);
  if (!document.body.dataset.readyMs) {
    document.body.dataset.readyMs = String(Math.round(performance.now()));
  }
}

function message(container, text, kind = "note") {
  container.replaceChildren(el("p", { class: kind, role: "status", text }));
}

// --- numbers, tables, charts --------------------------------------------------------------

function tile(key, label, value, unit = "") {
  return el(
    "div",
    { class: "tile" },
    el("span", { class: "label", text: label }),
    el("span", { class: "value", "data-stat": key, "data-value": value }, number(value), unit),
  );
}

function csvCell(value) {
  const text = String(value ?? "");
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function downloadButton(name, columns, rows) {
  const button = el("button", { type: "button", class: "csv", text: "Download CSV" });
  button.addEventListener("click", () => {
    const lines = [columns, ...rows].map((row) => row.map(csvCell).join(","));
    const blob = new Blob([`${lines.join("\n")}\n`], { type: "text/csv" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `${name}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    URL.revokeObjectURL(link.href);
  });
  return button;
}

function table(columns, rows, links = {}) {
  const head = el("tr", {}, columns.map((column) => el("th", { scope: "col", text: column })));
  const body = rows.map((row) =>
    el(
      "tr",
      {},
      row.map((value, index) => {
        const link = links[index];
        const text = typeof value === "number" ? number(value) : value;
        return el(
          "td",
          { "data-value": value },
          link ? el("a", { href: link(value), text }) : text,
        );
      }),
    ),
  );
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

// One chart and the same numbers as a table and a CSV file.
//   xs: the x values (UTC days, or labels); series: [{name, values}] aligned with xs.
function figure(container, { key, title, xTitle, xs, series, kind = "bar", dates = true, links }) {
  container.replaceChildren();
  container.dataset.figure = key;
  container.append(el("h2", { text: title }));
  if (!xs.length) {
    container.append(el("p", { class: "note", text: "No data for this range." }));
    return;
  }
  const plot = el("div", { class: "plot", role: "img", "aria-label": title });
  container.append(plot);
  const traces = series.map((item) => ({
    type: kind === "line" ? "scatter" : "bar",
    mode: kind === "line" ? "lines+markers" : undefined,
    name: item.name,
    x: xs,
    y: item.values,
  }));
  const layout = {
    margin: { t: 10, r: 10, b: 50, l: 60 },
    height: 320,
    barmode: series.length > 1 ? "stack" : "group",
    showlegend: series.length > 1,
    xaxis: { title: { text: xTitle }, type: dates ? "date" : "category" },
    yaxis: { rangemode: "tozero" },
  };
  window.Plotly.react(plot, traces, layout, { displaylogo: false, responsive: true });
  const columns = [xTitle, ...series.map((item) => item.name)];
  const rows = xs.map((x, index) => [x, ...series.map((item) => item.values[index])]);
  const details = el("details", { class: "numbers" }, el("summary", { text: "Numbers" }));
  details.open = true;
  details.append(table(columns, rows, links ? { 0: links } : {}));
  container.append(downloadButton(key, columns, rows), details);
}

// Periods -> values of several API answers' `data`, on one set of x values.
function bucketed(answers, valueOf = (entry) => entry.count) {
  const days = [...new Set(answers.flatMap((answer) => (answer.data || []).map((e) => periodDay(e.period))))].sort();
  const series = answers.map((answer) => {
    const byDay = new Map((answer.data || []).map((entry) => [periodDay(entry.period), valueOf(entry)]));
    return days.map((day) => byDay.get(day) ?? 0);
  });
  return { days, series };
}

function periodTitle(period) {
  return { day: "Day (UTC)", week: "Week from Monday (UTC)", month: "Month (UTC)", year: "Year (UTC)" }[period];
}

// The period picker and the date range, read from and kept in the address.
function rangeControls(defaults, onChange) {
  const params = query();
  const period = el("select", { id: "period", name: "period", "aria-label": "Period" },
    PERIODS.map((value) => el("option", { value, text: value })));
  period.value = params.get("period") || defaults.period;
  const start = el("input", { type: "date", id: "start_date", name: "start_date", "aria-label": "From (UTC)" });
  const end = el("input", { type: "date", id: "end_date", name: "end_date", "aria-label": "To (UTC)" });
  start.value = params.get("start_date") || defaults.start_date || "";
  end.value = params.get("end_date") || defaults.end_date || "";
  const values = () => ({ period: period.value, start_date: start.value, end_date: end.value });
  for (const input of [period, start, end]) {
    input.addEventListener("change", () => {
      remember(values());
      onChange(values());
    });
  }
  const form = el("div", { class: "controls" },
    el("label", {}, "Period ", period),
    el("label", {}, "From ", start),
    el("label", {}, "To ", end),
    el("span", { class: "hint", text: "UTC days, both included" }));
  return { form, values };
}

function idForm(name, label, onSubmit) {
  const input = el("input", { type: "number", min: "1", id: name, name, required: true, value: query().get(name) });
  const form = el("form", { class: "controls" }, el("label", {}, `${label} `, input),
    el("button", { type: "submit", text: "Show" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    remember({ [name]: input.value });
    onSubmit(input.value);
  });
  return { form, input };
}

// A Panoptes token, kept for this browser tab only and sent only to this service.
function tokenForm(onChange, hint) {
  const input = el("input", { type: "password", id: "token", name: "token", autocomplete: "off",
    "aria-label": "Token", placeholder: "Panoptes bearer token" });
  input.value = sessionStorage.getItem(TOKEN_KEY) || "";
  const save = el("button", { type: "submit", text: "Use token" });
  const forget = el("button", { type: "button", text: "Forget" });
  const form = el("form", { class: "controls token" }, el("label", {}, "Token ", input), save, forget,
    el("span", { class: "hint", text: hint }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    else sessionStorage.removeItem(TOKEN_KEY);
    onChange();
  });
  forget.addEventListener("click", () => {
    input.value = "";
    sessionStorage.removeItem(TOKEN_KEY);
    onChange();
  });
  return form;
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

// The user id in a Panoptes token's claims, read without verifying (eras verifies it).
function tokenUserId(text) {
  try {
    const payload = text.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    return String(JSON.parse(atob(payload)).data.id);
  } catch {
    return "";
  }
}

function failure(container, error) {
  message(container, error instanceof ApiError ? error.message : `Could not load: ${error.message}`, "error");
  rendered();
}

// --- Overview -----------------------------------------------------------------------------

async function overview(main) {
  const tiles = el("section", { class: "tiles" });
  const activity = el("section", { class: "figure" });
  const busiest = el("section", { class: "figure" });
  const controls = rangeControls({ period: "month" }, (values) => drawActivity(values));
  main.replaceChildren(el("h1", { text: "Overview" }), tiles, controls.form, activity, busiest);

  async function drawActivity({ period, start_date, end_date }) {
    try {
      const range = { period, start_date, end_date };
      const answers = await Promise.all([api("/classifications", range), api("/comments", range)]);
      const { days, series } = bucketed(answers);
      figure(activity, {
        key: "activity", title: "Classifications and comments", xTitle: periodTitle(period), xs: days,
        series: [{ name: "Classifications", values: series[0] }, { name: "Comments", values: series[1] }],
        kind: "line",
      });
      rendered();
    } catch (error) {
      failure(activity, error);
    }
  }

  const week = { start_date: utcDay(-6), period: "day" };
  const today = utcDay();
  const todayOf = (answer) => (answer.data || []).find((entry) => periodDay(entry.period) === today)?.count ?? 0;
  try {
    const [allClassifications, weekClassifications, allComments, weekComments, busy] = await Promise.all([
      api("/classifications"), api("/classifications", week), api("/comments"), api("/comments", week),
      api("/dashboard/data/busiest_projects", { days: 7, limit: 10 }),
    ]);
    tiles.replaceChildren(
      tile("classifications-all", "Classifications, all time", allClassifications.total_count),
      tile("classifications-7d", "Classifications, last 7 days", weekClassifications.total_count),
      tile("classifications-today", "Classifications, today", todayOf(weekClassifications)),
      tile("comments-all", "Comments, all time", allComments.total_count),
      tile("comments-7d", "Comments, last 7 days", weekComments.total_count),
      tile("comments-today", "Comments, today", todayOf(weekComments)),
    );
    figure(busiest, {
      key: "busiest", title: `Busiest projects, ${busy.start_date} to ${busy.end_date}`, xTitle: "Project",
      xs: busy.projects.map((project) => String(project.project_id)), dates: false,
      series: [{ name: "Classifications", values: busy.projects.map((project) => project.total_count) }],
      links: (id) => `/dashboard/project?project_id=${encodeURIComponent(id)}`,
    });
  } catch (error) {
    failure(tiles, error);
    return;
  }
  await drawActivity(controls.values());
}

// --- Project ------------------------------------------------------------------------------

async function project(main) {
  const tiles = el("section", { class: "tiles" });
  const [byWorkflow, time, comments, rates] = [0, 1, 2, 3].map(() => el("section", { class: "figure" }));
  const body = el("div", {}, tiles, byWorkflow, time, comments, rates);
  const controls = rangeControls({ period: "week" }, () => show());
  const picked = idForm("project_id", "Project id", () => show());
  main.replaceChildren(el("h1", { text: "Project" }), picked.form, controls.form, body);

  async function show() {
    const projectId = picked.input.value;
    if (!projectId) {
      message(tiles, "Enter a project id, or pick one of the busiest projects on the overview.");
      rendered();
      return;
    }
    const range = controls.values();
    try {
      const found = await api("/dashboard/data/project_workflows", { project_id: projectId, days: 14 });
      const ids = found.workflows.map((workflow) => workflow.workflow_id);
      const projectComments = api("/comments", { project_id: projectId, ...range });
      if (!ids.length) {
        message(tiles, `Project ${projectId} has no classifications yet.`);
        for (const section of [byWorkflow, time, rates]) section.replaceChildren();
      } else {
        // One call: every workflow's series, and their sum.
        const split = await api("/classifications", {
          workflow_id: ids.join(","), breakdown: "true", time_spent: "true", ...range,
        });
        const commentAnswer = await projectComments;
        tiles.replaceChildren(
          tile("classifications", "Classifications in range", split.total_count),
          tile("time-spent", "Time spent in range", hours(split.time_spent), " h"),
          tile("comments", "Comments in range", commentAnswer.total_count),
          tile("workflows", "Workflows", ids.length),
        );
        const { days, series } = bucketed(split.breakdown);
        figure(byWorkflow, {
          key: "workflows", title: "Classifications by workflow", xTitle: periodTitle(range.period), xs: days,
          series: split.breakdown.map((entry, index) => ({ name: `Workflow ${entry.workflow_id}`, values: series[index] })),
        });
        const spent = bucketed([split], (entry) => hours(entry.session_time));
        figure(time, {
          key: "time", title: "Time spent (hours)", xTitle: periodTitle(range.period), xs: spent.days,
          series: [{ name: "Hours", values: spent.series[0] }],
        });
        figure(rates, {
          key: "rates", title: `Daily rate by workflow, ${found.start_date} to ${found.end_date}`,
          xTitle: "Workflow", xs: found.workflows.map((workflow) => String(workflow.workflow_id)), dates: false,
          series: [{ name: "Classifications per day", values: found.workflows.map((workflow) => workflow.daily_rate) }],
        });
      }
      const commentAnswer = await projectComments;
      const commented = bucketed([commentAnswer]);
      figure(comments, {
        key: "comments", title: "Comments", xTitle: periodTitle(range.period), xs: commented.days,
        series: [{ name: "Comments", values: commented.series[0] }],
      });
      rendered();
    } catch (error) {
      failure(tiles, error);
    }
  }
  await show();
}

// --- Group --------------------------------------------------------------------------------

function refusal(error, what) {
  if (error.status === 401) return `${what} are visible to this group's members only: enter your token above.`;
  if (error.status === 403) return `${what} are not visible to you: ${error.message}.`;
  return error.message;
}

async function group(main) {
  const tiles = el("section", { class: "tiles" });
  const [activity, top, projects, members] = [0, 1, 2, 3].map(() => el("section", { class: "figure" }));
  const controls = rangeControls({ period: "month" }, () => show());
  const picked = idForm("group_id", "Group id", () => show());
  const tokens = tokenForm(() => show(), "Needed for members-only stats.");
  main.replaceChildren(el("h1", { text: "Group" }), picked.form, tokens, controls.form,
    tiles, activity, top, projects, members);

  async function show() {
    const groupId = picked.input.value;
    for (const section of [activity, top, projects, members]) section.replaceChildren();
    if (!groupId) {
      message(tiles, "Enter a user group id.");
      rendered();
      return;
    }
    const range = controls.values();
    const path = `/classifications/user_groups/${encodeURIComponent(groupId)}`;
    let stats;
    try {
      stats = await api(path, { ...range, top_contributors: 10 }, token());
    } catch (error) {
      message(tiles, error instanceof ApiError ? refusal(error, "This group's stats") : error.message, "notice");
      rendered();
      return;
    }
    tiles.replaceChildren(
      tile("classifications", "Classifications in range", stats.total_count),
      tile("time-spent", "Time spent in range", hours(stats.time_spent), " h"),
      tile("active-users", "Active members", stats.active_users),
    );
    const { days, series } = bucketed([stats]);
    figure(activity, {
      key: "group-activity", title: "Classifications", xTitle: periodTitle(range.period), xs: days,
      series: [{ name: "Classifications", values: series[0] }],
    });
    const contributors = stats.top_contributors || [];
    figure(top, {
      key: "top-contributors", title: "Top contributors", xTitle: "Volunteer", dates: false,
      xs: contributors.map((item) => String(item.user_id)),
      series: [{ name: "Classifications", values: contributors.map((item) => item.count) }],
    });
    const contributions = stats.project_contributions || [];
    figure(projects, {
      key: "group-projects", title: "Projects", xTitle: "Project", dates: false,
      xs: contributions.map((item) => String(item.project_id)),
      series: [{ name: "Classifications", values: contributions.map((item) => item.count) }],
      links: (id) => `/dashboard/project?project_id=${encodeURIComponent(id)}`,
    });
    members.append(el("h2", { text: "Members" }));
    try {
      const breakdown = await api(path, {
        individual_stats_breakdown: "true", start_date: range.start_date, end_date: range.end_date,
      }, token());
      const rows = breakdown.group_member_stats_breakdown.map((member) => [
        member.user_id, member.count, hours(member.session_time),
        member.project_contributions.map((item) => item.project_id).join(" "),
      ]);
      const columns = ["Volunteer", "Classifications", "Hours", "Projects"];
      members.append(downloadButton("members", columns, rows), table(columns, rows));
      members.dataset.figure = "members";
    } catch (error) {
      members.append(el("p", { class: "notice", role: "status",
        text: error instanceof ApiError ? refusal(error, "Member breakdowns") : error.message }));
    }
    rendered();
  }
  await show();
}

// --- Volunteer ----------------------------------------------------------------------------

async function volunteer(main) {
  const tiles = el("section", { class: "tiles" });
  const [activity, byCount, recents] = [0, 1, 2].map(() => el("section", { class: "figure" }));
  const controls = rangeControls({ period: "month" }, () => show());
  const tokens = tokenForm(() => show(), "Your Zooniverse token: it stays in this tab and goes only to eras.");
  main.replaceChildren(el("h1", { text: "Volunteer" }), tokens, controls.form, tiles, activity, byCount, recents);

  async function show() {
    for (const section of [activity, byCount, recents]) section.replaceChildren();
    const mine = token();
    const userId = mine ? tokenUserId(mine) : "";
    if (!mine || !userId) {
      message(tiles, mine ? "This does not look like a Panoptes token." : "Enter your token to see your own stats.", "notice");
      rendered();
      return;
    }
    const range = controls.values();
    const path = `/classifications/users/${encodeURIComponent(userId)}`;
    try {
      const [stats, latest] = await Promise.all([
        api(path, { ...range, time_spent: "true", project_contributions: "true" }, mine),
        api(path, { start_date: range.start_date, end_date: range.end_date, project_contributions: "true",
          order_project_contributions_by: "recents" }, mine),
      ]);
      tiles.replaceChildren(
        tile("classifications", "Your classifications in range", stats.total_count),
        tile("time-spent", "Time spent in range", hours(stats.time_spent), " h"),
        tile("projects", "Projects", stats.project_contributions.length),
      );
      const { days, series } = bucketed([stats]);
      figure(activity, {
        key: "volunteer-activity", title: `Volunteer ${userId}: classifications`, xTitle: periodTitle(range.period),
        xs: days, series: [{ name: "Classifications", values: series[0] }],
      });
      figure(byCount, {
        key: "projects-by-count", title: "Projects by count", xTitle: "Project", dates: false,
        xs: stats.project_contributions.map((item) => String(item.project_id)),
        series: [{ name: "Classifications", values: stats.project_contributions.map((item) => item.count) }],
      });
      recents.dataset.figure = "projects-by-recents";
      const rows = latest.project_contributions.map((item) => [item.project_id, item.count, item.last_contributed_at]);
      const columns = ["Project", "Classifications", "Latest (UTC)"];
      recents.append(el("h2", { text: "Projects, most recent first" }), downloadButton("recents", columns, rows),
        table(columns, rows));
      rendered();
    } catch (error) {
      message(tiles, error instanceof ApiError ? error.message : String(error), "notice");
      rendered();
    }
  }
  await show();
}

// --- Operator -----------------------------------------------------------------------------

function tierTable(title, lists) {
  const rows = lists.map((item) => [item.project_id, item.user_ids.join(" ")]);
  return el("div", {}, el("h3", { text: title }),
    rows.length ? table(["Project", "Volunteers"], rows) : el("p", { class: "note", text: "None." }));
}

async function operator(main) {
  const tiles = el("section", { class: "tiles" });
  const ingest = el("section", { class: "figure" });
  const rejected = el("section", { class: "figure" });
  const report = el("section", { class: "figure" });
  const tokens = tokenForm(() => show(), "A Zooniverse admin's token.");
  main.replaceChildren(el("h1", { text: "Operator" }), tokens, tiles, ingest, rejected, report);

  async function show() {
    for (const section of [ingest, rejected, report]) section.replaceChildren();
    const mine = token();
    if (!mine) {
      message(tiles, "Enter an admin token to see ingest, rejected events and the spurious report.", "notice");
      rendered();
      return;
    }
    try {
      const [state, spurious] = await Promise.all([
        api("/dashboard/data/operator", {}, mine), api("/reports/spurious", {}, mine),
      ]);
      const outcomes = Object.keys(state.ingested);
      tiles.replaceChildren(
        ...outcomes.map((outcome) => tile(`ingested-${outcome}`, `Events ${outcome}`, state.ingested[outcome])),
        tile("rejected-stored", "Rejected events kept", state.rejected.count),
      );
      figure(ingest, {
        key: "ingest", title: `POST /kinesis events since ${state.started_at} (this process)`, xTitle: "Outcome",
        xs: outcomes, dates: false, series: [{ name: "Events", values: outcomes.map((o) => state.ingested[o]) }],
      });
      const rows = state.rejected.latest.map((item) => [item.id, item.received_at, item.reason]);
      rejected.dataset.figure = "rejected";
      rejected.append(el("h2", { text: "Latest rejected events" }),
        rows.length ? table(["Id", "Received (UTC)", "Reason"], rows) : el("p", { class: "note", text: "None." }));
      report.dataset.figure = "spurious";
      const flagged = spurious.projects.map((item) => [item.project_id, item.dates.join(" ")]);
      report.append(
        el("h2", { text: `Spurious classifications, ${spurious.window.start_date} to ${spurious.window.end_date}` }),
        el("h3", { text: "Projects with a jump" }),
        flagged.length ? table(["Project", "Days"], flagged) : el("p", { class: "note", text: "None." }),
        tierTable("Tier one", spurious.tier_one), tierTable("Duty of care", spurious.duty_of_care),
        tierTable("Tier two", spurious.tier_two),
      );
      rendered();
    } catch (error) {
      message(tiles, error instanceof ApiError ? error.message : String(error), "notice");
      rendered();
    }
  }
  await show();
}

// --- start --------------------------------------------------------------------------------

const PAGES = { overview, project, group, volunteer, operator };
const page = document.body.dataset.page;
document.querySelector(`[data-nav="${page}"]`)?.setAttribute("aria-current", "page");
PAGES[page](document.getElementById("main"));
