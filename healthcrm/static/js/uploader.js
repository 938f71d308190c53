// Attachment uploads (templates/files/_dropzone.html): choose or drop files, see them listed, upload them
// straight to the store with a progress bar each, cancel or retry one without stopping the others.
//
// The app plans each upload (POST data-start-url): a small file is one multipart/form-data POST of the
// plan's fields and the file; a large one is sent in parts, each PUT to its own presigned URL, then
// completed with the parts' ETags. The same file chosen again after a reload resumes: the fingerprint
// (name|size|lastModified) finds the open upload, and the parts the store already has are skipped.
// Presigned URLs are the app's own routes on the local backend and absolute URLs of another origin on S3;
// the CSRF token only goes to the app's own origin.
(function () {
  "use strict";

  var MAX_IN_FLIGHT = 3;
  var PART_RETRIES = 3;
  var RETRY_BASE_MS = 1000;
  var PART_URL_BATCH = 20;
  var PREVIEW_TYPES = /^image\/(png|jpeg|gif|webp)$/;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (error) {
      return false;
    }
  }

  function humanSize(bytes) {
    if (bytes < 1024) { return bytes === 1 ? "1 byte" : bytes + " bytes"; }
    var units = ["KB", "MB", "GB", "TB"];
    var value = bytes;
    var unit = "";
    for (var i = 0; i < units.length; i++) {
      value /= 1024;
      unit = units[i];
      if (Math.round(value * 10) / 10 < 1024) { break; }
    }
    return value.toFixed(1).replace(/\.0$/, "") + " " + unit;
  }

  function fingerprint(file) {
    return [file.name, file.size, file.lastModified].join("|");
  }

  function sleep(ms) {
    return new Promise(function (resolve) { window.setTimeout(resolve, ms); });
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // A failure the person can act on ("failed: retry"), or a refusal that retrying will not change.
  function Failure(message, options) {
    this.message = message;
    this.rejected = Boolean(options && options.rejected);
    this.cancelled = Boolean(options && options.cancelled);
    this.status = (options && options.status) || 0;
  }

  // JSON to and from the app (same origin: the CSRF header always goes).
  function callApp(method, url, body) {
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() }
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        var data = {};
        try { data = text ? JSON.parse(text) : {}; } catch (error) { data = {}; }
        if (response.ok) { return data; }
        if (response.status === 422) {
          throw new Failure(data.reason || "The file was refused.", { rejected: true, status: 422 });
        }
        if (response.status === 401) {
          throw new Failure("your session has ended; sign in again", { status: 401 });
        }
        if (response.status === 403) {
          throw new Failure(data.reason || "your account cannot upload files", { rejected: true, status: 403 });
        }
        throw new Failure(data.reason || "the server answered " + response.status, { status: response.status });
      });
    }, function () {
      throw new Failure("the connection was lost");
    });
  }

  // One XHR to the store (or the app's stand-in routes), with upload progress and cancel.
  function sendToStore(item, method, url, body, onProgress) {
    return new Promise(function (resolve, reject) {
      // Cancelled while the app was still answering (a part's URL, say): nothing more is sent.
      if (item.cancelled) {
        reject(new Failure("cancelled", { cancelled: true }));
        return;
      }
      var xhr = new XMLHttpRequest();
      item.requests.push(xhr);
      function forget() {
        var at = item.requests.indexOf(xhr);
        if (at >= 0) { item.requests.splice(at, 1); }
      }
      xhr.open(method, url, true);
      if (sameOrigin(url)) { xhr.setRequestHeader("X-CSRFToken", csrfToken()); }
      xhr.upload.onprogress = function (event) {
        if (event.lengthComputable && onProgress) { onProgress(event.loaded); }
      };
      xhr.onload = function () {
        forget();
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve(xhr);
          return;
        }
        var reason = "the store answered " + xhr.status;
        try {
          var data = JSON.parse(xhr.responseText);
          if (data && data.error) { reason = data.error; }
        } catch (error) { /* S3 answers XML; the status says enough */ }
        reject(new Failure(reason, { status: xhr.status }));
      };
      xhr.onerror = function () { forget(); reject(new Failure("the connection was lost")); };
      xhr.ontimeout = xhr.onerror;
      xhr.onabort = function () { forget(); reject(new Failure("cancelled", { cancelled: true })); };
      xhr.send(body);
    });
  }

  function Uploader(root) {
    this.root = root;
    this.input = root.querySelector("[data-file-input]");
    this.zone = root.querySelector("[data-dropzone]");
    this.list = root.querySelector("[data-upload-list]");
    this.actions = root.querySelector("[data-upload-actions]");
    this.startButton = root.querySelector("[data-upload-start]");
    this.clearButton = root.querySelector("[data-upload-clear]");
    this.summary = root.querySelector("[data-upload-summary]");
    this.replace = root.getAttribute("data-replace");
    this.multiple = this.input.hasAttribute("multiple");
    this.items = [];
    this.inFlight = 0;
    this.running = false;
    this.bind();
  }

  Uploader.prototype.url = function (name, id) {
    return this.root.getAttribute("data-" + name + "-url").replace("__ID__", encodeURIComponent(id));
  };

  Uploader.prototype.bind = function () {
    var self = this;
    this.input.addEventListener("change", function () {
      self.add(self.input.files);
      // Cleared so that choosing the same file again (to resume it) fires "change" again.
      self.input.value = "";
    });
    // Files chosen before this script ran (a slow connection, or a quick hand) are taken as if just chosen.
    if (this.input.files && this.input.files.length) {
      this.add(this.input.files);
      this.input.value = "";
    }
    ["dragenter", "dragover"].forEach(function (name) {
      self.zone.addEventListener(name, function (event) {
        event.preventDefault();
        self.zone.classList.add("is-dragging");
      });
    });
    ["dragleave", "dragend"].forEach(function (name) {
      self.zone.addEventListener(name, function () { self.zone.classList.remove("is-dragging"); });
    });
    this.zone.addEventListener("drop", function (event) {
      event.preventDefault();
      self.zone.classList.remove("is-dragging");
      if (event.dataTransfer && event.dataTransfer.files) { self.add(event.dataTransfer.files); }
    });
    this.startButton.addEventListener("click", function () { self.start(); });
    this.clearButton.addEventListener("click", function () { self.clearFinished(true); });
  };

  Uploader.prototype.add = function (fileList) {
    var files = Array.prototype.slice.call(fileList || []);
    if (!files.length) { return; }
    this.clearFinished(false);
    if (!this.multiple) {
      // One new version at a time: a new choice replaces the one waiting.
      this.items.filter(function (item) { return item.state === "ready"; }).forEach(this.remove, this);
      files = files.slice(0, 1);
    }
    var waiting = {};
    this.items.forEach(function (item) { waiting[item.fingerprint] = true; });
    for (var i = 0; i < files.length; i++) {
      if (!waiting[fingerprint(files[i])]) { this.items.push(this.render(files[i])); }
    }
    this.summary.textContent = "";
    this.refreshControls();
  };

  Uploader.prototype.render = function (file) {
    var self = this;
    var item = {
      file: file,
      fingerprint: fingerprint(file),
      state: "ready",
      requests: [],
      plan: null,
      reason: ""
    };
    var row = element("li", "upload-item");
    var thumb = element("span", "upload-thumb");
    thumb.setAttribute("aria-hidden", "true");
    if (PREVIEW_TYPES.test(file.type)) {
      item.previewUrl = URL.createObjectURL(file);
      var image = element("img");
      image.src = item.previewUrl;
      image.alt = "";
      thumb.appendChild(image);
    } else {
      thumb.textContent = (file.name.split(".").pop() || "file").slice(0, 5).toUpperCase();
    }
    var body = element("div", "upload-body");
    var head = element("div", "upload-head");
    head.appendChild(element("span", "upload-name", file.name));
    head.appendChild(element("span", "upload-size muted small", humanSize(file.size)));
    body.appendChild(head);
    var bar = element("div", "upload-bar");
    item.progress = element("progress");
    item.progress.max = 100;
    item.progress.value = 0;
    item.progress.setAttribute("aria-label", "Upload of " + file.name);
    item.percent = element("span", "upload-percent small", "");
    bar.appendChild(item.progress);
    bar.appendChild(item.percent);
    bar.hidden = true;
    item.bar = bar;
    body.appendChild(bar);
    item.status = element("p", "upload-status small", "Ready to upload");
    body.appendChild(item.status);

    item.removeButton = element("button", "upload-remove", "×");
    item.removeButton.type = "button";
    item.removeButton.setAttribute("aria-label", "Remove " + file.name);
    item.removeButton.addEventListener("click", function () { self.remove(item); self.refreshControls(); });
    item.cancelButton = element("button", "button secondary upload-cancel", "Cancel");
    item.cancelButton.type = "button";
    item.cancelButton.setAttribute("aria-label", "Cancel the upload of " + file.name);
    item.cancelButton.hidden = true;
    item.cancelButton.addEventListener("click", function () { self.cancel(item); });
    item.retryButton = element("button", "button secondary upload-retry", "Retry");
    item.retryButton.type = "button";
    item.retryButton.setAttribute("aria-label", "Retry the upload of " + file.name);
    item.retryButton.hidden = true;
    item.retryButton.addEventListener("click", function () { self.retry(item); });
    var buttons = element("div", "upload-buttons");
    buttons.appendChild(item.cancelButton);
    buttons.appendChild(item.retryButton);
    buttons.appendChild(item.removeButton);

    row.appendChild(thumb);
    row.appendChild(body);
    row.appendChild(buttons);
    item.row = row;
    this.list.appendChild(row);
    return item;
  };

  Uploader.prototype.remove = function (item) {
    if (item.previewUrl) { URL.revokeObjectURL(item.previewUrl); item.previewUrl = null; }
    item.row.remove();
    this.items.splice(this.items.indexOf(item), 1);
  };

  // Finished rows (uploaded, rejected, cancelled) leave the list when new files are chosen.
  Uploader.prototype.clearFinished = function (all) {
    var self = this;
    this.items.slice().forEach(function (item) {
      var finished = ["done", "rejected", "cancelled"].indexOf(item.state) >= 0;
      if (finished || (all && (item.state === "ready" || item.state === "failed"))) { self.remove(item); }
    });
    if (all) { this.summary.textContent = ""; }
    this.refreshControls();
  };

  Uploader.prototype.refreshControls = function () {
    var ready = this.items.some(function (item) { return item.state === "ready"; });
    this.list.hidden = this.items.length === 0;
    this.actions.hidden = this.items.length === 0;
    this.startButton.disabled = !ready || this.running;
    this.clearButton.disabled = this.running;
  };

  Uploader.prototype.setState = function (item, state, text) {
    item.state = state;
    item.row.setAttribute("data-state", state);
    item.status.textContent = text;
    item.removeButton.hidden = state !== "ready";
    item.cancelButton.hidden = state !== "queued" && state !== "uploading";
    item.retryButton.hidden = state !== "failed";
    // A refused or cancelled file keeps no bar: a full one would read as "sent".
    item.bar.hidden = ["ready", "rejected", "cancelled"].indexOf(state) >= 0;
  };

  Uploader.prototype.showProgress = function (item, sent) {
    var size = item.file.size || 1;
    var percent = Math.min(100, Math.floor((sent / size) * 100));
    item.progress.value = percent;
    item.percent.textContent = percent + "%";
  };

  Uploader.prototype.start = function () {
    var self = this;
    this.items.forEach(function (item) {
      if (item.state === "ready") { self.setState(item, "queued", "Waiting…"); }
    });
    this.summary.textContent = "";
    this.running = true;
    this.refreshControls();
    this.pump();
  };

  Uploader.prototype.retry = function (item) {
    this.setState(item, "queued", "Waiting…");
    this.summary.textContent = "";
    this.running = true;
    this.refreshControls();
    this.pump();
  };

  // At most MAX_IN_FLIGHT files at once; each one ends on its own, so one failure stops nothing else.
  Uploader.prototype.pump = function () {
    var self = this;
    while (this.inFlight < MAX_IN_FLIGHT) {
      var next = this.items.filter(function (item) { return item.state === "queued"; })[0];
      if (!next) { break; }
      this.inFlight += 1;
      this.upload(next).then(function () {
        self.inFlight -= 1;
        self.pump();
      });
    }
    if (this.inFlight === 0 && this.running) {
      this.running = false;
      this.finish();
    }
  };

  Uploader.prototype.upload = function (item) {
    var self = this;
    item.cancelled = false;
    item.plan = null;
    this.setState(item, "uploading", "Starting…");
    this.showProgress(item, 0);
    var body = {
      name: item.file.name,
      size: item.file.size,
      type: item.file.type || "",
      fingerprint: item.fingerprint
    };
    if (this.replace) { body.replace = Number(this.replace); }
    return callApp("POST", this.root.getAttribute("data-start-url"), body)
      .then(function (plan) {
        item.plan = plan;
        if (item.cancelled) { throw new Failure("cancelled", { cancelled: true }); }
        self.setState(item, "uploading", plan.resumed ? "Resuming…" : "Uploading…");
        return plan.multipart ? self.sendParts(item, plan) : self.sendWhole(item, plan);
      })
      .then(function (parts) {
        // Past this point the file is the app's to check: cancelling would race with the check.
        self.setState(item, "checking", "Checking the file…");
        return callApp("POST", self.url("complete", item.plan.id), { parts: parts || [] });
      })
      .then(function (answer) {
        self.showProgress(item, item.file.size);
        item.result = answer;
        self.setState(item, "done", "Uploaded" + (answer.version > 1 ? " as version " + answer.version : ""));
      })
      .catch(function (failure) {
        if (!(failure instanceof Failure)) { failure = new Failure(String(failure)); }
        if (item.cancelled || failure.cancelled) {
          self.abortSession(item);
          self.setState(item, "cancelled", "Cancelled");
        } else if (failure.rejected) {
          item.reason = failure.message;
          self.setState(item, "rejected", "Rejected: " + failure.message);
        } else {
          item.reason = failure.message;
          self.setState(item, "failed", "Failed: " + failure.message + ". Retry when ready.");
        }
      });
  };

  Uploader.prototype.sendWhole = function (item, plan) {
    var self = this;
    var form = new FormData();
    Object.keys(plan.post.fields).forEach(function (name) { form.append(name, plan.post.fields[name]); });
    form.append("file", item.file);
    return sendToStore(item, "POST", plan.post.url, form, function (loaded) {
      // The form's own fields make the body a little larger than the file.
      self.showProgress(item, Math.min(loaded, item.file.size));
    }).then(function () { return []; });
  };

  Uploader.prototype.sendParts = function (item, plan) {
    var self = this;
    var etags = {};
    var sent = 0;
    (plan.uploaded_parts || []).forEach(function (part) {
      etags[part.part_number] = part.etag;
      sent += part.size;
    });
    this.showProgress(item, sent);
    var missing = [];
    for (var n = 1; n <= plan.part_count; n++) {
      if (!etags[n]) { missing.push(n); }
    }
    var urls = {};

    function urlFor(number) {
      if (urls[number]) { return Promise.resolve(urls[number]); }
      var batch = missing.filter(function (m) { return m >= number && !urls[m]; }).slice(0, PART_URL_BATCH);
      return callApp("POST", self.url("parts", plan.id), { part_numbers: batch }).then(function (answer) {
        Object.keys(answer.urls).forEach(function (key) { urls[Number(key)] = answer.urls[key]; });
        return urls[number];
      });
    }

    function sendPart(number, attempt) {
      if (item.cancelled) { return Promise.reject(new Failure("cancelled", { cancelled: true })); }
      var start = (number - 1) * plan.part_size;
      var blob = item.file.slice(start, Math.min(start + plan.part_size, item.file.size));
      return urlFor(number)
        .then(function (url) {
          return sendToStore(item, "PUT", url, blob, function (loaded) { self.showProgress(item, sent + loaded); });
        })
        .then(function (xhr) {
          var etag = xhr.getResponseHeader("ETag");
          if (!etag) {
            throw new Failure("the store did not say it received part " + number + " (no ETag header)");
          }
          etags[number] = etag.replace(/"/g, "");
          sent += blob.size;
          self.showProgress(item, sent);
        })
        .catch(function (failure) {
          if (failure.cancelled || item.cancelled || failure.rejected || attempt >= PART_RETRIES) { throw failure; }
          // An expired or refused URL is asked for again; everything else waits a little longer each time.
          if (failure.status === 403 || failure.status === 400) { delete urls[number]; }
          self.setState(item, "uploading", "Retrying part " + number + "…");
          return sleep(RETRY_BASE_MS * Math.pow(2, attempt)).then(function () {
            self.setState(item, "uploading", "Uploading…");
            return sendPart(number, attempt + 1);
          });
        });
    }

    var chain = Promise.resolve();
    missing.forEach(function (number) {
      chain = chain.then(function () { return sendPart(number, 0); });
    });
    return chain.then(function () {
      return Object.keys(etags).map(function (key) { return [Number(key), etags[key]]; })
        .sort(function (a, b) { return a[0] - b[0]; });
    });
  };

  Uploader.prototype.cancel = function (item) {
    item.cancelled = true;
    item.requests.slice().forEach(function (xhr) { xhr.abort(); });
    if (item.state === "queued") { this.setState(item, "cancelled", "Cancelled"); }
    this.abortSession(item);
  };

  // Once per upload: the store drops what it has. A failure here only leaves an upload that expires.
  Uploader.prototype.abortSession = function (item) {
    if (!item.plan || item.plan.aborted) { return; }
    item.plan.aborted = true;
    callApp("DELETE", this.url("upload", item.plan.id)).catch(function () {});
  };

  Uploader.prototype.finish = function () {
    var counts = { done: [], rejected: [], cancelled: [], failed: [] };
    this.items.forEach(function (item) {
      if (counts[item.state]) { counts[item.state].push(item); }
    });
    var parts = [];
    if (counts.done.length) { parts.push(counts.done.length + " uploaded"); }
    if (counts.rejected.length) {
      parts.push(counts.rejected.length + " rejected: " + counts.rejected.map(function (item) {
        var reason = item.reason.replace(/\.$/, "");
        return reason.indexOf(item.file.name) === 0 ? reason : item.file.name + ": " + reason;
      }).join("; "));
    }
    if (counts.cancelled.length) { parts.push(counts.cancelled.length + " cancelled"); }
    if (counts.failed.length) {
      parts.push(counts.failed.length + " failed (" + counts.failed.map(function (item) {
        return item.file.name;
      }).join(", ") + "): retry them when ready");
    }
    this.summary.textContent = parts.join(", ") + (parts.length ? "." : "");
    this.summary.setAttribute("data-done", "true");
    this.refreshControls();
    if (counts.done.length) { this.refreshList(); }
  };

  Uploader.prototype.refreshList = function () {
    var url = this.root.getAttribute("data-refresh-url");
    var target = this.root.getAttribute("data-refresh-target");
    if (url && target && window.htmx && document.querySelector(target)) {
      window.htmx.ajax("GET", url, { target: target, swap: "outerHTML" });
    }
  };

  function setUp() {
    var roots = document.querySelectorAll("[data-uploader]");
    for (var i = 0; i < roots.length; i++) {
      if (!roots[i].uploader) { roots[i].uploader = new Uploader(roots[i]); }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
  window.addEventListener("pagehide", function () {
    var roots = document.querySelectorAll("[data-uploader]");
    for (var i = 0; i < roots.length; i++) {
      if (roots[i].uploader) {
        roots[i].uploader.items.forEach(function (item) {
          if (item.previewUrl) { URL.revokeObjectURL(item.previewUrl); }
        });
      }
    }
  });
})();
