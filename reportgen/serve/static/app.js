// reportgen serve: the page's script (no libraries, nothing from the internet).
// User text is only ever written with .value / .textContent, never as HTML.
(function () {
  "use strict";

  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  async function post(url, data) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(data),
      });
    } catch (error) {
      return { status: 0, ok: false, body: { error: "无法连接 reportgen serve（它是否已经结束？）" } };
    }
    let body;
    try {
      body = await response.json();
    } catch (error) {
      body = { error: "服务器没有返回有效的结果（" + response.status + "）" };
    }
    return { status: response.status, ok: response.ok, body: body };
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function button(text, onClick, className) {
    const node = make("button", className || "", text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  // --- one project -------------------------------------------------------------------------

  function initProject() {
    const stateNode = document.getElementById("state");
    if (!stateNode) return;
    const page = JSON.parse(stateNode.textContent);
    const sheet = document.getElementById("sheet");
    const statusNode = document.getElementById("status");
    const saveButton = document.getElementById("save");
    const banners = document.getElementById("banners");
    const draftKey = "reportgen-draft:" + page.path;
    const tables = page.layout.tables;
    let checkTimer = null;
    let checkSeq = 0;
    let changed = 0;
    let lastErrors = 1;
    let previewTimer = null;
    let previewRunning = false;
    let previewWanted = false;
    let previewedState = null;

    function autosize(node) {
      if (node.tagName !== "TEXTAREA" || !node.isConnected || node.offsetParent === null) return;
      node.style.height = "auto";
      node.style.height = node.scrollHeight + 2 + "px";
    }

    function showExtras(tableKey, show) {
      const table = sheet.querySelector('table.rows[data-table="' + tableKey + '"]');
      const toggle = sheet.querySelector('input.show-extra[data-table="' + tableKey + '"]');
      if (!toggle) return;
      if (show === undefined) {
        show = toggle.checked || Array.from(table.querySelectorAll("td.extra .v")).some(function (n) { return n.value; });
      }
      toggle.checked = show;
      table.classList.toggle("show-extra", show);
      table.querySelectorAll("textarea.v").forEach(autosize);
    }

    function setValue(node, value) {
      if (node.tagName === "SELECT" && value !== "" &&
          !Array.from(node.options).some(function (o) { return o.value === value; })) {
        const option = make("option", "", value);
        option.value = value;
        node.appendChild(option);
      }
      node.value = value;
      autosize(node);
    }

    function rowsOf(tableKey) {
      const table = sheet.querySelector('table.rows[data-table="' + tableKey + '"]');
      return table ? Array.from(table.tBodies[0].rows) : [];
    }

    function newRow(tableKey, orig, values) {
      const template = document.getElementById("row-" + tableKey);
      const row = template.content.firstElementChild.cloneNode(true);
      row.dataset.orig = orig === null || orig === undefined ? "" : String(orig);
      row.querySelectorAll(".v").forEach(function (node) {
        setValue(node, (values && values[node.dataset.col]) || "");
      });
      return row;
    }

    function renumber(tableKey) {
      const rows = rowsOf(tableKey);
      rows.forEach(function (row, index) { row.cells[0].textContent = String(index + 1); });
      const table = sheet.querySelector('table.rows[data-table="' + tableKey + '"]');
      const count = table.closest("section").querySelector(".row-count");
      if (count) count.textContent = "（" + rows.length + " 行）";
      // 一级/二级 left empty mean "same as the row above": show what they carry, in grey
      (tables[tableKey].carried || []).forEach(function (column) {
        let above = "";
        rows.forEach(function (row) {
          const node = row.querySelector('.v[data-col="' + column + '"]');
          if (!node) return;
          if (node.value === "") node.placeholder = above ? above : "";
          else { node.placeholder = ""; above = node.value; }
        });
      });
    }

    function restore(state) {
      const inherited = page.snapshot.inherited || {};
      const locked = page.snapshot.locked || [];
      sheet.querySelectorAll(".v[data-key]").forEach(function (node) {
        const key = node.dataset.key;
        setValue(node, (state.values && state.values[key]) || "");
        if (inherited[key]) {
          node.classList.add("inherited");
          node.title = "来自 " + inherited[key] + "（单位共用信息）；在这里修改会写入本项目文件，只对本项目有效";
        }
        if (locked.indexOf(key) >= 0) {
          node.disabled = true;
          node.title = "文件中此项不是文字（是列表或映射），请在文本编辑器中修改";
        }
      });
      Object.keys(tables).forEach(function (tableKey) {
        const table = sheet.querySelector('table.rows[data-table="' + tableKey + '"]');
        const rows = (state.rows && state.rows[tableKey]) || [];
        table.tBodies[0].replaceChildren.apply(table.tBodies[0], rows.map(function (row) {
          return newRow(tableKey, row.orig, row.values);
        }));
        renumber(tableKey);
        showExtras(tableKey);
        table.querySelectorAll("textarea.v").forEach(autosize);
      });
    }

    function collect() {
      const values = {};
      sheet.querySelectorAll(".v[data-key]").forEach(function (node) {
        if (!node.disabled) values[node.dataset.key] = node.value;
      });
      const rows = {};
      Object.keys(tables).forEach(function (tableKey) {
        rows[tableKey] = rowsOf(tableKey).map(function (row) {
          const cells = {};
          row.querySelectorAll(".v[data-col]").forEach(function (node) { cells[node.dataset.col] = node.value; });
          return { orig: row.dataset.orig === "" ? null : Number(row.dataset.orig), values: cells };
        });
      });
      return { values: values, rows: rows };
    }

    // - drafts: kept in the browser until saved, so that nothing typed is lost -

    function readDraft() {
      try { return JSON.parse(localStorage.getItem(draftKey) || "null"); } catch (error) { return null; }
    }

    function keepDraft() {
      try {
        localStorage.setItem(draftKey, JSON.stringify({
          version: page.version, base: page.base, state: collect(), time: new Date().toLocaleString("zh-CN"),
        }));
      } catch (error) { /* storage full or refused: the page still holds the values */ }
    }

    function dropDraft() {
      try { localStorage.removeItem(draftKey); } catch (error) { /* nothing kept */ }
    }

    function banner(kind, text, actions) {
      const node = make("div", "banner " + kind);
      node.appendChild(make("span", "banner-text", text));
      (actions || []).forEach(function (action) { node.appendChild(button(action[0], action[1], action[2])); });
      node.appendChild(button("×", function () { node.remove(); }, "close"));
      banners.replaceChildren(node);
      return node;
    }

    // - checking as the clerk types -

    function showStatus() {
      if (changed === 0) statusNode.textContent = "与文件一致";
      else statusNode.textContent = "已修改 " + changed + " 处，未保存";
      statusNode.className = "status" + (changed ? " dirty" : "");
      saveButton.disabled = changed === 0;
    }

    function clearFindings() {
      sheet.querySelectorAll(".msgs").forEach(function (node) { node.replaceChildren(); });
      sheet.querySelectorAll(".has-error, .has-warning").forEach(function (node) {
        node.classList.remove("has-error", "has-warning");
      });
      sheet.querySelectorAll("td.score-col").forEach(function (node) { node.textContent = ""; node.title = ""; });
    }

    function targetCell(target) {
      if (!target) return null;
      const parts = target.split(":");
      if (parts[0] === "f") return sheet.querySelector('td[data-target="f:' + CSS.escape(parts.slice(1).join(":")) + '"]');
      if (parts[0] === "s") return sheet.querySelector('section[data-target="s:' + CSS.escape(parts[1]) + '"]');
      const row = rowsOf(parts[1])[Number(parts[2])];
      if (!row) return null;
      if (parts[0] === "t") return row.querySelector('td[data-col="' + CSS.escape(parts[3]) + '"]');
      return row.querySelector('td[data-col="name"]') || row.querySelector("td.cell");
    }

    function focusTarget(target) {
      const cell = targetCell(target);
      if (!cell) return;
      cell.scrollIntoView({ block: "center", behavior: "smooth" });
      const input = cell.querySelector(".v");
      if (input) input.focus({ preventScroll: true });
    }

    function showFindings(result) {
      clearFindings();
      const list = document.getElementById("problems");
      list.replaceChildren();
      result.problems.forEach(function (problem) {
        const cell = targetCell(problem.target);
        if (cell) {
          const box = cell.matches("section") ? cell.querySelector(".section-msgs") : cell.querySelector(".msgs");
          if (box) box.appendChild(make("div", "msg " + problem.severity, problem.message));
          cell.classList.add(problem.severity === "error" ? "has-error" : "has-warning");
        }
        const where = problem.target ? "" : problem.file + " 第 " + problem.line + " 行：";
        const item = make("li", problem.severity);
        item.appendChild(make("span", "sev", problem.severity === "error" ? "错误" : "警告"));
        item.appendChild(make("span", "", where + (problem.key ? problem.key + "：" : "") + problem.message));
        if (problem.target) item.addEventListener("click", function () { focusTarget(problem.target); });
        list.appendChild(item);
      });
      if (!result.problems.length) list.appendChild(make("li", "none", "没有发现问题"));
      const explain = document.getElementById("explain");
      explain.replaceChildren();
      result.explain.forEach(function (line) {
        const item = make("li", line.kind, line.text);
        if (line.target) item.addEventListener("click", function () { focusTarget(line.target); });
        explain.appendChild(item);
        const parts = (line.target || "").split(":");
        if (parts[0] === "r" || parts[0] === "t") {
          const row = rowsOf(parts[1])[Number(parts[2])];
          const cell = row && row.querySelector("td.score-col");
          if (cell) {
            let text = "采用 " + line.used;
            if (line.computed !== null && line.computed !== line.used) text += "（计算 " + line.computed + "）";
            cell.textContent = text;
            cell.title = line.text;
          }
        }
      });
      if (!result.explain.length) explain.appendChild(make("li", "none", "改正错误后显示得分说明"));
      document.getElementById("total").textContent = result.total === null ? "—" : result.total;
      document.getElementById("grade").textContent = result.grade === null ? "—" : result.grade;
      document.getElementById("counts").textContent = result.errors + " 个错误，" + result.warnings + " 个警告";
      document.getElementById("counts").className = "counts" + (result.errors ? " has-errors" : "");
    }

    async function check() {
      const seq = ++checkSeq;
      const state = collect();
      const answer = await post("/api/check", { path: page.path, base: page.base, state: state });
      if (seq !== checkSeq) return; // a newer check is on its way
      if (!answer.ok) {
        statusNode.textContent = answer.body.error || "检查失败";
        return;
      }
      changed = answer.body.changed;
      lastErrors = answer.body.errors;
      showFindings(answer.body);
      showStatus();
      if (changed) keepDraft(); else dropDraft();
      sheet.dataset.checked = String(seq);
      schedulePreview();
    }

    function edited() {
      statusNode.textContent = "正在检查…";
      clearTimeout(checkTimer);
      checkTimer = setTimeout(check, 300);
      keepDraft();
    }

    sheet.addEventListener("submit", function (event) { event.preventDefault(); });
    sheet.addEventListener("input", function (event) {
      if (event.target.classList.contains("v")) {
        autosize(event.target);
        const row = event.target.closest("tr.row");
        if (row) renumber(row.closest("table").dataset.table);
        edited();
      }
    });
    sheet.addEventListener("change", function (event) {
      if (event.target.tagName === "SELECT") edited();
      if (event.target.classList.contains("show-extra")) showExtras(event.target.dataset.table, event.target.checked);
    });

    sheet.addEventListener("click", function (event) {
      const control = event.target.closest("button");
      if (!control) return;
      if (control.classList.contains("add-row")) {
        const tableKey = control.dataset.table;
        const table = sheet.querySelector('table.rows[data-table="' + tableKey + '"]');
        const row = newRow(tableKey, null, {});
        table.tBodies[0].appendChild(row);
        renumber(tableKey);
        const first = row.querySelector(".v");
        if (first) first.focus();
        edited();
        return;
      }
      const row = control.closest("tr.row");
      if (!row) return;
      const tableKey = row.closest("table").dataset.table;
      const op = control.dataset.op;
      if (op === "up" && row.previousElementSibling) row.parentNode.insertBefore(row, row.previousElementSibling);
      else if (op === "down" && row.nextElementSibling) row.parentNode.insertBefore(row.nextElementSibling, row);
      else if (op === "insert") row.parentNode.insertBefore(newRow(tableKey, null, {}), row.nextElementSibling);
      else if (op === "remove") row.remove();
      else return;
      renumber(tableKey);
      edited();
    });

    // - saving -

    async function save() {
      if (saveButton.disabled) return;
      saveButton.disabled = true;
      statusNode.textContent = "正在保存…";
      const answer = await post("/api/save", {
        path: page.path, version: page.version, base: page.base, state: collect(),
      });
      if (answer.ok) {
        page.version = answer.body.version;
        page.base = answer.body.base;
        dropDraft();
        restore(answer.body.state);
        banners.replaceChildren();
        await check();
        statusNode.textContent = answer.body.written ? "已保存" : "与文件一致";
        if (answer.body.note) banner("warning", answer.body.note);
        return;
      }
      keepDraft();
      if (answer.body.conflict) {
        banner("error", answer.body.error, [
          ["重新载入（保留我的修改，之后可合并）", function () { location.reload(); }, "primary"],
          ["放弃我的修改，重新载入", function () { dropDraft(); location.reload(); }],
        ]);
        statusNode.textContent = "未保存：文件已在磁盘上被修改";
      } else {
        banner("error", "未保存：" + (answer.body.error || "保存失败"));
        showStatus();
      }
    }

    saveButton.addEventListener("click", save);
    document.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && event.key === "s") {
        event.preventDefault();
        save();
      }
    });

    // - preview: the real PDF of the draft -

    async function preview() {
      if (previewRunning) { previewWanted = true; return; }
      previewRunning = true;
      const status = document.getElementById("preview-status");
      status.textContent = "正在生成预览（LibreOffice 转换，需几秒）…";
      const state = collect();
      const answer = await post("/api/preview", { path: page.path, base: page.base, state: state });
      previewRunning = false;
      if (!answer.ok || answer.body.error) {
        status.textContent = answer.body.error || "预览失败";
      } else {
        previewedState = JSON.stringify(state);
        const box = document.getElementById("preview");
        box.replaceChildren.apply(box, answer.body.pages.map(function (url, index) {
          const link = make("a");
          link.href = answer.body.pdf;
          link.target = "_blank";
          link.rel = "noopener";
          const image = make("img");
          image.src = url;
          image.alt = "第 " + (index + 1) + " 页";
          link.appendChild(image);
          return link;
        }));
        status.textContent = "预览已更新（" + new Date().toLocaleTimeString("zh-CN") + "），点图打开 PDF";
      }
      if (previewWanted) { previewWanted = false; schedulePreview(); }
    }

    function schedulePreview() {
      clearTimeout(previewTimer);
      if (!document.getElementById("auto-preview").checked || lastErrors) return;
      if (previewedState === JSON.stringify(collect())) return;
      previewTimer = setTimeout(preview, 2500);
    }

    document.getElementById("preview-button").addEventListener("click", preview);

    // - start: the file's values, or the draft kept from before -

    restore(page.snapshot);
    const draft = readDraft();
    if (draft && draft.version === page.version) {
      restore(draft.state);
      banner("info", "已恢复上次未保存的修改（" + draft.time + "）。", [
        ["放弃这些修改", function () { dropDraft(); restore(page.snapshot); banners.replaceChildren(); check(); }],
      ]);
    } else if (draft) {
      banner("warning", "你上次未保存的修改（" + draft.time + "）是在此文件的旧版本上做的，之后文件在磁盘上被修改过。", [
        ["把我的修改合并到当前文件", async function () {
          const answer = await post("/api/rebase", { path: page.path, base: draft.base, state: draft.state });
          if (!answer.ok) { banner("error", answer.body.error || "合并失败"); return; }
          page.version = answer.body.version;
          page.base = answer.body.base;
          restore(answer.body.state);
          banner("info", "已把你的修改合并到当前文件，请检查后保存。");
          check();
        }, "primary"],
        ["放弃我的修改", function () { dropDraft(); banners.replaceChildren(); }],
      ]);
    }
    check();
  }

  // --- overview ----------------------------------------------------------------------------

  function initOverview() {
    const form = document.getElementById("new-project");
    if (form) {
      form.addEventListener("submit", async function (event) {
        event.preventDefault();
        const message = form.querySelector(".form-message");
        message.textContent = "正在新建…";
        const answer = await post("/api/new", {
          folder: form.elements.folder.value, name: form.elements.name.value, region: form.elements.region.value,
        });
        if (answer.ok) location.href = answer.body.url;
        else message.textContent = answer.body.error || "新建失败";
      });
    }
    const importForm = document.getElementById("import-word");
    if (importForm) {
      importForm.addEventListener("submit", async function (event) {
        event.preventDefault();
        const message = importForm.querySelector(".form-message");
        const file = importForm.elements.file.files[0];
        if (!file) return;
        message.textContent = "正在导入…";
        message.classList.remove("ok");
        let response;
        let body;
        try {
          response = await fetch("/api/import", {
            method: "POST",
            headers: { "Content-Type": "application/octet-stream", "X-CSRF-Token": csrf,
                       "X-File-Name": encodeURIComponent(file.name) },
            body: await file.arrayBuffer(),
          });
          body = await response.json();
        } catch (error) {
          message.textContent = "导入失败：无法连接 reportgen serve";
          return;
        }
        if (!response.ok) { message.textContent = body.error || "导入失败"; return; }
        message.textContent = "读到 " + body.forms + " 张表，写入 " + body.files.length + " 个项目文件";
        message.classList.add("ok");
        const list = document.getElementById("imported");
        list.replaceChildren();
        body.files.forEach(function (item) {
          const entry = make("li");
          const link = make("a", "", item.path);
          link.href = item.url;
          entry.appendChild(link);
          list.appendChild(entry);
        });
        body.problems.forEach(function (problem) { list.appendChild(make("li", "problem", problem)); });
      });
    }
    document.querySelectorAll("button.build").forEach(function (control) {
      control.addEventListener("click", async function () {
        const unit = control.closest("article.unit");
        const box = unit.querySelector(".progress");
        const bar = box.querySelector("progress");
        const text = box.querySelector(".progress-text");
        box.classList.remove("hidden", "failed", "done");
        text.textContent = "正在开始…";
        control.disabled = true;
        const answer = await post("/api/build", { unit: control.dataset.unit });
        if (!answer.ok) {
          box.classList.add("failed");
          text.textContent = answer.body.error || "无法开始生成";
          control.disabled = false;
          return;
        }
        const id = answer.body.id;
        async function poll() {
          let job;
          try {
            job = await (await fetch("/api/build/" + encodeURIComponent(id))).json();
          } catch (error) {
            text.textContent = "无法连接 reportgen serve";
            control.disabled = false;
            return;
          }
          if (job.state === "running") {
            bar.max = job.total || 1;
            bar.value = job.done;
            text.textContent = job.stage + (job.total ? "：" + job.done + "/" + job.total : "");
            setTimeout(poll, 400);
            return;
          }
          control.disabled = false;
          bar.max = 1;
          bar.value = job.state === "done" ? 1 : 0;
          box.classList.add(job.state === "done" ? "done" : "failed");
          text.textContent = (job.state === "done" ? "完成：" : "未完成：") + job.message;
          const list = make("ul", "failures");
          job.failures.forEach(function (failure) { list.appendChild(make("li", "", failure)); });
          if (job.failures.length) text.appendChild(list);
          if (job.archive) {
            const link = unit.querySelector("a.download");
            link.href = "/download/" + job.archive.split("/").map(encodeURIComponent).join("/");
            link.classList.remove("hidden");
            const badge = unit.querySelector("header .badge");
            badge.textContent = "报送包已是最新";
            badge.className = "badge state-built";
          }
          const refresh = make("a", "refresh", "刷新各项目的状态");
          refresh.href = "/";
          text.appendChild(document.createTextNode(" "));
          text.appendChild(refresh);
        }
        poll();
      });
    });
  }

  const kind = document.body.dataset.page;
  if (kind === "project") initProject();
  else if (kind === "overview") initOverview();
})();
