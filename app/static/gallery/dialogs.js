// A small modal question (a name, a key and a value, a confirmation), instead of the browser's
// prompt() and confirm(), which block the page and cannot show the service's answer.

const dialog = document.getElementById("prompt");
const form = document.getElementById("prompt-form");

// Resolves with the fields' values once `act(values)` succeeds (its error message is shown and
// the question stays open), or with null when cancelled.
export function ask({ title, text = "", fields = [], ok = "OK", danger = false, act = async () => {} }) {
  document.getElementById("prompt-title").textContent = title;
  document.getElementById("prompt-text").textContent = text;
  const message = document.getElementById("prompt-message");
  message.textContent = "";
  const okButton = document.getElementById("prompt-ok");
  okButton.textContent = ok;
  okButton.classList.toggle("danger", danger);
  okButton.classList.toggle("primary", !danger);
  const holder = document.getElementById("prompt-fields");
  holder.replaceChildren(
    ...fields.map((field) => {
      const label = document.createElement("label");
      label.textContent = field.label;
      const input = document.createElement("input");
      input.name = field.name;
      input.value = field.value ?? "";
      input.placeholder = field.placeholder ?? "";
      input.required = field.required ?? true;
      input.autocomplete = "off";
      label.append(input);
      return label;
    }),
  );
  return new Promise((resolve) => {
    const submit = async (event) => {
      event.preventDefault();
      if (event.submitter?.value === "cancel") return finish(null);
      const values = Object.fromEntries(fields.map((field) => [field.name, form.elements[field.name].value]));
      okButton.disabled = true;
      try {
        await act(values);
        finish(values);
      } catch (error) {
        message.textContent = error.message;
      } finally {
        okButton.disabled = false;
      }
    };
    const cancel = () => finish(null);
    const finish = (values) => {
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("cancel", cancel);
      if (dialog.open) dialog.close();
      resolve(values);
    };
    form.addEventListener("submit", submit);
    dialog.addEventListener("cancel", cancel);
    dialog.showModal();
    (holder.querySelector("input") ?? okButton).focus();
  });
}
