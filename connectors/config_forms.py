"""A source kind's settings as form fields, generated from its pydantic `Config` (connectors/sources/), and its
credentials (`SECRETS`) as write-only fields: the console's typed Source form (connectors/admin.py).

str is a text input, bool a checkbox, int and float numbers (with the schema's bounds), list[str] a textarea of one
value a line, Literal and Enum a select. Labels come from the field names, help from a field's description or else
the sentence of the Config's docstring that names it. What the form gives back is checked by the kind's schema
(connectors.sources.validated_config), whose refusals are put on the fields they concern.
"""

from __future__ import annotations

import enum
import re
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from django import forms
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from connectors.sources import source_module

CONFIG_PREFIX = "config__"
SECRET_PREFIX = "secret__"  # noqa: S105 (a form field prefix, not a password)
CLEAR_SUFFIX = "__clear"
# Credentials that are documents rather than tokens (a PEM key, a service account's JSON key): pasted whole, lines
# and all, so a textarea; like a password input, it is never filled in with what is stored.
_MULTILINE_SECRETS = re.compile(r"(_key|certificate|pem)$")
_SENTENCE_END = re.compile(r"(?<=[.;])\s+(?=[A-Z`(])")


@dataclass(frozen=True)
class Setting:
    """One field of a kind's Config, as the form sees it."""

    name: str
    info: FieldInfo
    kind: str  # "bool", "int", "float", "list", "choice", "str"
    choices: tuple[str, ...] = ()

    @property
    def form_name(self) -> str:
        return f"{CONFIG_PREFIX}{self.name}"

    @property
    def default(self) -> Any:
        if self.info.default_factory is not None:
            return self.info.default_factory()  # type: ignore[call-arg]
        return None if self.info.default is PydanticUndefined else self.info.default


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def settings_of(kind: str) -> list[Setting]:
    schema: type[BaseModel] = source_module(kind).Config
    found = []
    for name, info in schema.model_fields.items():
        annotation = _unwrap_optional(info.annotation)
        origin = get_origin(annotation)
        if origin is Literal:
            found.append(Setting(name, info, "choice", tuple(str(arg) for arg in get_args(annotation))))
        elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            found.append(Setting(name, info, "choice", tuple(str(member.value) for member in annotation)))
        elif annotation is bool:
            found.append(Setting(name, info, "bool"))
        elif annotation is int:
            found.append(Setting(name, info, "int"))
        elif annotation is float:
            found.append(Setting(name, info, "float"))
        elif origin in (list, tuple, set, frozenset):
            found.append(Setting(name, info, "list"))
        else:
            found.append(Setting(name, info, "str"))
    return found


def help_for(schema: type[BaseModel], name: str, info: FieldInfo) -> str:
    """The field's description, else the sentences of the Config's docstring that name it (`name`)."""
    if info.description:
        return info.description
    doc = " ".join((schema.__doc__ or "").split())
    mentions = [sentence for sentence in _SENTENCE_END.split(doc) if f"`{name}`" in sentence]
    return " ".join(mentions[:2]).replace("`", "")


_ACRONYMS = {"api": "API", "url": "URL", "urls": "URLs", "id": "ID", "ids": "IDs"}


def label_for(name: str) -> str:
    """`api_url` -> "API URL", `max_depth` -> "Max depth"."""
    words = [_ACRONYMS.get(word, word) for word in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def _bounds(info: FieldInfo) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for rule in info.metadata:
        if isinstance(rule, annotated_types.Ge):
            bounds["min_value"] = rule.ge
        elif isinstance(rule, annotated_types.Gt):
            bounds["min_value"] = rule.gt
        elif isinstance(rule, annotated_types.Le):
            bounds["max_value"] = rule.le
        elif isinstance(rule, annotated_types.Lt):
            bounds["max_value"] = rule.lt
    return bounds


def form_field(setting: Setting, help_text: str) -> forms.Field:
    label = label_for(setting.name)
    required = setting.info.is_required()
    default = setting.default
    if setting.kind == "bool":
        return forms.BooleanField(label=label, required=False, help_text=help_text)
    if setting.kind == "choice":
        return forms.ChoiceField(label=label, choices=[(choice, choice.replace("_", " ")) for choice in setting.choices],
                                 help_text=help_text, required=required or default is not None)
    if setting.kind == "int":
        return forms.IntegerField(label=label, required=required, help_text=_with_default(help_text, default),
                                  **_bounds(setting.info))
    if setting.kind == "float":
        return forms.FloatField(label=label, required=required, help_text=_with_default(help_text, default),
                                widget=forms.NumberInput(attrs={"step": "any"}), **_bounds(setting.info))
    if setting.kind == "list":
        return forms.CharField(label=label, required=required, widget=forms.Textarea(attrs={"rows": 3}),
                               help_text=f"{help_text} One a line.".strip())
    return forms.CharField(label=label, required=required, help_text=help_text, strip=True)


def _with_default(help_text: str, default: Any) -> str:
    return f"{help_text} Default {default}.".strip() if default is not None else help_text


def config_fields(kind: str) -> dict[str, forms.Field]:
    schema: type[BaseModel] = source_module(kind).Config
    return {setting.form_name: form_field(setting, help_for(schema, setting.name, setting.info))
            for setting in settings_of(kind)}


def config_initial(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """What the form shows for a stored config: each setting's value, else its default."""
    initial = {}
    for setting in settings_of(kind):
        value = config.get(setting.name, setting.default)
        if setting.kind == "list":
            value = "\n".join(str(item) for item in value or [])
        initial[setting.form_name] = "" if value is None else value
    return initial


def config_from_form(kind: str, cleaned: dict[str, Any]) -> dict[str, Any]:
    """The config the form's values say: required settings, and the others where they differ from the default (so a
    default changed later applies to sources that never chose otherwise)."""
    config: dict[str, Any] = {}
    for setting in settings_of(kind):
        value = cleaned.get(setting.form_name)
        if setting.kind == "list":
            value = [line.strip() for line in (value or "").splitlines() if line.strip()]
        elif setting.kind in ("int", "float") and value is None:
            continue
        if setting.info.is_required() or value != setting.default:
            config[setting.name] = value
    return config


def schema_errors(kind: str, error: ValidationError) -> list[tuple[str | None, str]]:
    """(form field or None for the whole form, message) for each problem the kind's schema found."""
    known = {setting.name for setting in settings_of(kind)}
    problems = []
    for entry in error.errors():
        location = entry["loc"]
        message = str(entry["msg"]).removeprefix("Value error, ")
        field = str(location[0]) if location else ""
        problems.append((f"{CONFIG_PREFIX}{field}" if field in known else None, message))
    return problems


def secret_fields(kind: str, stored: dict[str, str] | None) -> dict[str, forms.Field]:
    """A write-only field per credential the kind takes, and a checkbox to remove what is stored. `stored` is None
    when the stored credentials cannot be read (the encryption key changed)."""
    from connectors.secrets import mask

    fields: dict[str, forms.Field] = {}
    for name in source_module(kind).SECRETS:
        if stored is None:
            state = "The stored credentials cannot be read with the current encryption key."
        elif stored.get(name):
            state = f"Stored: {mask(stored[name])}. Leave blank to keep it."
        else:
            state = "Not set."
        widget: forms.Widget = (forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"})
                                if _MULTILINE_SECRETS.search(name)
                                else forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
        fields[f"{SECRET_PREFIX}{name}"] = forms.CharField(
            label=label_for(name), required=False, widget=widget, strip=True,
            help_text=f"Write-only, stored encrypted. {state}")
        fields[f"{SECRET_PREFIX}{name}{CLEAR_SUFFIX}"] = forms.BooleanField(
            label=f"Remove the stored {label_for(name)}", required=False)
    return fields


def secrets_from_form(kind: str, cleaned: dict[str, Any], stored: dict[str, str]) -> dict[str, str]:
    """The credentials after the form: a value typed replaces, a ticked "remove" drops, blank keeps what is stored."""
    secrets = dict(stored)
    for name in source_module(kind).SECRETS:
        typed = cleaned.get(f"{SECRET_PREFIX}{name}") or ""
        if cleaned.get(f"{SECRET_PREFIX}{name}{CLEAR_SUFFIX}"):
            secrets.pop(name, None)
        elif typed:
            secrets[name] = typed
    return secrets
