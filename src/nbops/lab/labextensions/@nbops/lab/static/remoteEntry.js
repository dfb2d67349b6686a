/*
 * nbops lab's frontend extension (lab/handlers.py serves its data).
 *
 * Written as the container webpack's Module Federation builds, which is how JupyterLab loads a
 * prebuilt extension (https://webpack.js.org/concepts/module-federation/#dynamic-remote-containers:
 * `init(shareScope)`, then `get(module)` returning a factory): plain JavaScript with no build step,
 * so nbops needs no Node toolchain and ships no generated bundle. What it uses of JupyterLab comes
 * from the share scope JupyterLab hands to `init` (its singletons: React, apputils, services).
 *
 * - `@nbops/lab:new-notebook`: a launcher card and a command that ask for a template and a name
 *   and make notebooks/NAME.ipynb on disk at once, as `nbops new TEMPLATE NAME` does, then open
 *   it (jupyterlab_templates' dialog, which this replaces, opened an empty Untitled.ipynb).
 * - `@nbops/lab:job-form`: jupyter-scheduler's "Additional options" of the job form (its
 *   documented extension point, the IAdvancedOptions token), as the scheduler draws them, plus
 *   the form's parameters prefilled from the notebook's parameters cell when the form opens, and
 *   on a job's page a link to its MLflow run.
 *   The token is the scheduler's own object, taken from its plugin list, which is the only place
 *   the scheduler exposes it; its default plugin is disabled by package.json.
 */
(function () {
  "use strict";
  const NAME = "@nbops/lab";
  const CREATE_FORM = 1; // jupyter-scheduler's JobsView.CreateForm
  const JOB_DETAIL = 5; // and JobsView.JobDetail
  const RUN_TAG = "MLflow run: "; // a finished job's tag (lab/jobs.py): its run's page, from the lab's root
  let shareScope = null;

  function newest(versions) {
    // a singleton is registered once; where there are several, the one loaded, else the newest
    const keys = Object.keys(versions);
    const loaded = keys.filter((k) => versions[k].loaded);
    const pick = (loaded.length ? loaded : keys).sort((a, b) =>
      a.localeCompare(b, undefined, { numeric: true })
    );
    return versions[pick[pick.length - 1]];
  }

  async function shared(pkg) {
    const versions = shareScope && shareScope[pkg];
    if (!versions || !Object.keys(versions).length) {
      throw new Error(`${NAME}: JupyterLab shares no ${pkg}`);
    }
    const factory = await newest(versions).get();
    return factory();
  }

  async function request(services, coreutils, path, init) {
    const settings = services.ServerConnection.makeSettings();
    const url = coreutils.URLExt.join(settings.baseUrl, "nbops", path);
    const response = await services.ServerConnection.makeRequest(url, init || {}, settings);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(body.message || `${response.status} ${response.statusText}`);
    }
    return body;
  }

  function newNotebookPlugin(libs, launcherToken) {
    const { apputils, services, coreutils, widgets, ui } = libs;
    const command = "nbops:new-notebook";

    function form(templates, previous) {
      const body = document.createElement("div");
      body.className = "nbops-NewNotebook";
      const row = (label, input) => {
        const wrap = document.createElement("label");
        wrap.style.display = "block";
        wrap.style.marginBottom = "8px";
        const text = document.createElement("div");
        text.textContent = label;
        wrap.append(text, input);
        body.append(wrap);
        return input;
      };
      const select = document.createElement("select");
      select.name = "template";
      select.className = "jp-mod-styled";
      select.style.width = "100%";
      for (const t of templates) {
        const option = document.createElement("option");
        option.value = option.textContent = t.name;
        select.append(option);
      }
      if (previous) {
        select.value = previous.template;
      }
      row("Template", select);
      const name = document.createElement("input");
      name.name = "name";
      name.className = "jp-mod-styled";
      name.style.width = "100%";
      name.style.boxSizing = "border-box";
      name.placeholder = "e.g. churn (letters, digits, _ and -)";
      name.value = previous ? previous.name : "";
      row("Name (notebooks/NAME.ipynb)", name);
      const widget = new widgets.Widget({ node: body });
      widget.getValue = () => ({ template: select.value, name: name.value.trim() });
      // the name field has the focus: type the name, press Enter
      widget.onAfterAttach = () => name.focus();
      return widget;
    }

    return {
      id: `${NAME}:new-notebook`,
      description: "A new experiment notebook from one of the project's templates (nbops new).",
      autoStart: true,
      optional: [launcherToken],
      activate: (app, launcher) => {
        app.commands.addCommand(command, {
          label: (args) => (args.isLauncher ? "New experiment" : "New experiment from a template…"),
          caption: "A notebook in notebooks/ from one of the project's templates, as `nbops new` makes it",
          icon: (args) => (args.isLauncher ? ui.notebookIcon : undefined),
          execute: async () => {
            let templates;
            try {
              templates = (await request(services, coreutils, "templates")).templates;
            } catch (error) {
              return apputils.showErrorMessage("nbops: cannot list the templates", error);
            }
            if (!templates.length) {
              return apputils.showErrorMessage(
                "nbops: no templates",
                new Error("the project has no templates (templates/*.ipynb)")
              );
            }
            let previous = null;
            for (;;) {
              const result = await apputils.showDialog({
                title: "New experiment",
                body: form(templates, previous),
                buttons: [apputils.Dialog.cancelButton(), apputils.Dialog.okButton({ label: "Create" })],
                focusNodeSelector: "input[name='name']",
              });
              if (!result.button.accept) {
                return;
              }
              previous = result.value;
              try {
                const made = await request(services, coreutils, "new", {
                  method: "POST",
                  body: JSON.stringify(result.value),
                });
                return app.commands.execute("docmanager:open", { path: made.path });
              } catch (error) {
                // nbops's one line (a bad name, one that exists): say it, ask again, as typed
                await apputils.showErrorMessage("nbops: cannot create the notebook", error);
              }
            }
          },
        });
        if (launcher) {
          launcher.add({ command, category: "Notebook", rank: 0, args: { isLauncher: true } });
        }
      },
    };
  }

  function jobFormPlugin(libs, token, defaultOptions) {
    const { React, services, coreutils } = libs;

    function runLink(props) {
      // a job's page links to its MLflow run, in the lab's MLflow UI (a new browser tab)
      const tag = props.jobsView === JOB_DETAIL && (props.model.tags || []).find((t) => t.startsWith(RUN_TAG));
      if (!tag) {
        return null;
      }
      const href = coreutils.PageConfig.getBaseUrl() + tag.slice(RUN_TAG.length);
      return React.createElement(
        "a",
        { href, target: "_blank", rel: "noopener", className: "nbops-RunLink", style: { color: "var(--jp-content-link-color)" } },
        "Open this job's run in MLflow"
      );
    }

    function JobFormOptions(props) {
      const latest = React.useRef(props);
      latest.current = props;
      const found = React.useRef(null); // {file, parameters} as the server read them
      const file = props.model && props.model.inputFile;

      function apply() {
        // the form's own updates may carry the model it started with and drop ours; a form whose
        // parameters were never set (undefined, where a user's removal leaves []) gets them
        const now = latest.current;
        const answer = found.current;
        if (!answer || now.jobsView !== CREATE_FORM || answer.file !== now.model.inputFile
            || now.model.parameters !== undefined || !answer.parameters.length) {
          return;
        }
        const parameters = answer.parameters.map((p) => ({ name: p.name, value: p.value }));
        now.handleModelChange(Object.assign({}, now.model, { parameters }));
      }

      React.useEffect(() => {
        if (props.jobsView !== CREATE_FORM || !file) {
          return undefined;
        }
        let live = true;
        request(services, coreutils, `parameters?path=${encodeURIComponent(file)}`)
          .then((answer) => {
            if (live) {
              found.current = { file, parameters: answer.parameters };
              apply();
            }
          })
          .catch((error) => console.warn(`${NAME}: no parameters for ${file}: ${error.message}`));
        return () => {
          live = false;
        };
      }, [file]);
      React.useEffect(apply); // after every render
      const { original, ...rest } = props;
      return React.createElement(React.Fragment, null, runLink(rest), React.createElement(original, rest));
    }

    return {
      id: `${NAME}:job-form`,
      description: "The job form's parameters, prefilled from the notebook's parameters cell.",
      autoStart: true,
      provides: token,
      activate: (app) => {
        // the scheduler's own component, drawn inside ours
        const original = defaultOptions(app);
        return (props) => React.createElement(JobFormOptions, Object.assign({ original }, props));
      },
    };
  }

  async function schedulerOptions() {
    // the scheduler's default "Additional options" plugin: its token and its component
    const scheduler = window._JUPYTERLAB && window._JUPYTERLAB["@jupyterlab/scheduler"];
    if (!scheduler) {
      return null;
    }
    const module = (await scheduler.get("./extension"))();
    const plugins = module.__esModule || module.default ? module.default : module;
    const plugin = (Array.isArray(plugins) ? plugins : [plugins]).find(
      (p) => p.id === "@jupyterlab/scheduler:IAdvancedOptions"
    );
    return plugin ? { token: plugin.provides, activate: plugin.activate } : null;
  }

  async function libraries() {
    const [React, apputils, services, coreutils, widgets, launcher, ui] = await Promise.all([
      shared("react"),
      shared("@jupyterlab/apputils"),
      shared("@jupyterlab/services"),
      shared("@jupyterlab/coreutils"),
      shared("@lumino/widgets"),
      shared("@jupyterlab/launcher"),
      shared("@jupyterlab/ui-components"),
    ]);
    return { React, apputils, services, coreutils, widgets, ui, launcherToken: launcher.ILauncher };
  }

  async function plugins() {
    // whatever fails here, the scheduler keeps a provider of the options its default plugin
    // (disabled by package.json) provided: its job form never breaks because of nbops
    const [libs, options] = await Promise.all([
      libraries().catch((error) => console.error(`${NAME}: ${error.message}`)),
      schedulerOptions().catch((error) => console.error(`${NAME}: ${error.message}`)),
    ]);
    const made = libs ? [newNotebookPlugin(libs, libs.launcherToken)] : [];
    if (options && libs) {
      made.push(jobFormPlugin(libs, options.token, options.activate));
    } else if (options) {
      made.push({ id: `${NAME}:job-form`, autoStart: true, provides: options.token, activate: options.activate });
    }
    return made;
  }

  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = {
    init: (scope) => {
      shareScope = scope;
    },
    get: async (module) => {
      if (module !== "./extension") {
        throw new Error(`${NAME} has no module ${module}`);
      }
      const made = await plugins();
      return () => ({ __esModule: true, default: made });
    },
  };
})();
