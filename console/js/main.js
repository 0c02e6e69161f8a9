// The web console: a client of the public API like any other, served by the gateway at /.
// This module wires the parts together and owns the session: who is logged in, and what ends it.

import { Api, ApiError } from "./api.js";
import { Details } from "./details.js";
import { byId } from "./dom.js";
import { Follower } from "./follow.js";
import { Gallery } from "./gallery.js";
import { Pipeline, operationsFromOpenApi } from "./pipeline.js";
import { Presets } from "./presets.js";
import { forgetToken, saveToken, savedToken } from "./session.js";
import { Uploads } from "./uploads.js";

const api = new Api(savedToken);

// ---- Errors: every API error is shown from its JSON message ------------------------------------

const alertBox = byId("alert");
const detailsAlert = byId("details-alert");

/** Shows an error where the person is looking: the open dialog, else the page. */
function report(error) {
  if (error instanceof ApiError && error.status === 401 && savedToken()) {
    endSession(error.message);
    return;
  }
  const box = details.isOpen ? detailsAlert : alertBox;
  box.textContent = error.message;
  box.hidden = false;
}

function clearErrors() {
  for (const box of [alertBox, detailsAlert]) {
    box.hidden = true;
    box.textContent = "";
  }
}

/**
 * The upload's `operations` and `variants`: the pipeline is the default output unless it is
 * given a variant name of its own; each picked preset is a variant named after it.
 */
function uploadRequest(operations, variantName, presetVariants) {
  if (!variantName) {
    return { operations: operations.length ? operations : undefined, variants: presetVariants };
  }
  const variants = { [variantName]: operations };  // first: the image's `output` is its first variant
  for (const [name, preset] of Object.entries(presetVariants || {})) variants[name] ??= preset;
  return { variants };
}

// ---- The parts -----------------------------------------------------------------------------------

const pipeline = new Pipeline({ list: byId("steps"), choice: byId("operation-choice"), addButton: byId("add-step") });
const presets = new Presets(byId("preset-choices"));

const details = new Details({
  async onDelete(image) {
    clearErrors();
    try {
      await api.deleteImage(image.id);
      gallery.remove(image.id);
      return true;
    } catch (error) {
      report(error);
      return false;
    }
  },
  // The card that had the focus is gone: the keyboard goes on from the gallery.
  onDeleted: () => gallery.focus() || byId("upload-file").focus(),
});

const follower = new Follower(api, {
  async onStatus(id, answer) {
    const known = gallery.image(id);
    if (!known || known.status === answer.status) return;
    // The status answer is short; the image itself carries the variants and their signed URLs.
    try {
      const { image } = await api.image(id);
      gallery.show(image);
      uploads.update(image);
      details.refresh(image);
    } catch (error) {
      report(error);
    }
  },
  onGone: (id) => gallery.remove(id),
  onError: report,
});

const gallery = new Gallery({
  list: byId("gallery-list"),
  empty: byId("gallery-empty"),
  more: byId("gallery-more"),
  api,
  onOpen: (image) => { clearErrors(); details.open(image); },
  onPending: (image) => follower.follow(image.id),
  onError: report,
});

const uploads = new Uploads({
  api,
  request: () => uploadRequest(pipeline.value(), byId("pipeline-variant").value.trim(), presets.value()),
  onAccepted: (image) => gallery.show(image),
  onError: report,
});

// ---- The session -----------------------------------------------------------------------------

const authSection = byId("auth");
const workspace = byId("workspace");
const who = byId("who");
let catalogueLoaded = false;

async function loadCatalogue() {
  if (catalogueLoaded) return;
  const [document, answer] = await Promise.all([api.openApi(), api.presets()]);
  pipeline.offer(operationsFromOpenApi(document));
  presets.offer(answer.presets);
  catalogueLoaded = true;
}

async function startSession(user) {
  authSection.hidden = true;
  workspace.hidden = false;
  who.hidden = false;
  byId("who-name").textContent = user.name;
  try {
    await loadCatalogue();
  } catch (error) {
    report(error);
  }
  await gallery.reload();
}

/** Back to the login form; `message` says why when the API ended the session itself. */
function endSession(message) {
  forgetToken();
  follower.stop();
  gallery.clear();
  uploads.clear();
  if (details.isOpen) details.close();
  workspace.hidden = true;
  who.hidden = true;
  authSection.hidden = false;
  clearErrors();
  if (message) {
    alertBox.textContent = message;
    alertBox.hidden = false;
  }
  byId("auth-email").focus();
}

byId("auth-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const form = event.currentTarget;
  const { name, email, password } = Object.fromEntries(new FormData(form));
  try {
    if (event.submitter?.value === "signup") await api.signUp(name, email, password);
    const login = await api.logIn(email, password);
    saveToken(login.access_token);
    const { user } = await api.me();
    form.reset();
    await startSession(user);
    byId("upload-file").focus();
  } catch (error) {
    report(error);
  }
});

byId("logout").addEventListener("click", async () => {
  let failure;
  try {
    await api.logOut();  // revokes the token server-side, not just here
  } catch (error) {
    // Already refused (expired, revoked): logged out all the same.
    if (!(error instanceof ApiError && error.status === 401)) failure = error.message;
  }
  endSession(failure);
});

async function resume() {
  if (!savedToken()) {
    endSession();
    return;
  }
  try {
    const { user } = await api.me();
    await startSession(user);
  } catch (error) {
    endSession(error instanceof ApiError && error.status === 401 ? error.message : undefined);
    if (!(error instanceof ApiError && error.status === 401)) report(error);
  }
}

resume();
