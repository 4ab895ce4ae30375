"""Identities, accounts, groups and memberships in the admin console; every change of who reads as what goes
through identity.services, which audits it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.formsets import DELETION_FIELD_NAME
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from audit import services as audit
from audit.admin import AuditedAdminMixin
from identity import selectors, services
from identity.models import Account, ExternalIdentity, Group, GroupMembership
from identity.principals import describe_principal


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Where an admin links a user's Slack, Teams or source account to their Citewise user; each link and unlink
    audited with who and what."""

    def save_model(self, request: HttpRequest, obj: ExternalIdentity, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit.record(request.user, "identity.link", object_type="identity.externalidentity", object_id=obj.pk,
                     surface="admin", detail={"principal": obj.principal, "user": obj.user.get_username(),
                                              "is_external": obj.is_external, "changed": change})

    def delete_model(self, request: HttpRequest, obj: ExternalIdentity) -> None:
        audit.record(request.user, "identity.unlink", object_type="identity.externalidentity", object_id=obj.pk,
                     surface="admin", detail={"principal": obj.principal, "user": obj.user.get_username()})
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for identity in queryset.select_related("user"):
            audit.record(request.user, "identity.unlink", object_type="identity.externalidentity",
                         object_id=identity.pk, surface="admin",
                         detail={"principal": identity.principal, "user": identity.user.get_username()})
        super().delete_queryset(request, queryset)

    list_display = ("principal", "user", "is_external", "created_at")
    list_filter = ("is_external",)
    search_fields = ("principal", "user__username", "user__email")
    autocomplete_fields = ("user",)


class GroupMembershipFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        for form in self.forms:
            membership = form.instance
            if (membership.pk and membership.origin == GroupMembership.Origin.SOURCE and "member" in form.changed_data
                    and not (self.can_delete and form.cleaned_data.get(DELETION_FIELD_NAME, False))):
                raise ValidationError(f"{form.initial.get('member')} was synced from the source and cannot be edited "
                                      "here: delete it (that revokes it) and add the new member as a local "
                                      "membership.")


class GroupMembershipInline(admin.TabularInline):
    """Deleting a source-synced row revokes it (kept, shown with who and when) instead of deleting it, so the
    next sync cannot grant it again; deleting a local row deletes it. Lift a revocation under Group memberships."""

    model = GroupMembership
    formset = GroupMembershipFormSet
    extra = 0
    fields = ("member", "origin", "revoked_at", "revoked_by")
    readonly_fields = ("origin", "revoked_at", "revoked_by")


def _report_removals(modeladmin: admin.ModelAdmin, request: HttpRequest, outcomes: list[str]) -> None:
    revoked = outcomes.count("revoked")
    if revoked:
        modeladmin.message_user(request, f"{revoked} source-synced membership(s) revoked rather than deleted: the "
                                         "source still grants them, so they stay listed as revoked and the next "
                                         "sync will not restore them. Lift the revocation under Group memberships.",
                                messages.WARNING)
    deleted = outcomes.count("deleted")
    if deleted:
        modeladmin.message_user(request, f"{deleted} local membership(s) deleted.", messages.SUCCESS)


@admin.register(Group)
class GroupAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("principal", "name", "source", "synced_at")
    list_filter = ("source",)
    search_fields = ("principal", "name")
    inlines = [GroupMembershipInline]

    # A group a source defines would only come back with the next sync: revoke its memberships instead. Refused
    # in the delete view rather than by has_delete_permission, which the admin also asks of every group a deleted
    # source cascades to, and which would then forbid deleting the source.
    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        group = self.get_object(request, object_id)
        if group is not None and group.source_id is not None:
            self.message_user(request, f"{group} is synced from {group.source} and was not deleted: the next sync "
                                       "would bring it back. Revoke its memberships instead.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:identity_group_change", args=[quote(object_id)]))
        return super().delete_view(request, object_id, extra_context)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        synced = queryset.filter(source__isnull=False).count()
        if synced:
            self.message_user(request, f"{synced} group(s) synced from a source were not deleted: the next sync "
                                       "would bring them back. Revoke their memberships instead.", messages.WARNING)
        super().delete_queryset(request, queryset.filter(source__isnull=True))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not GroupMembership:
            return super().save_formset(request, form, formset, change)
        instances = formset.save(commit=False)  # deletions are left to us
        outcomes = [services.remove_membership(m, actor=request.user) for m in formset.deleted_objects]
        for membership in instances:
            membership.save()  # added here, so local (the model's default origin)
        _report_removals(self, request, outcomes)


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(GroupMembership)
class GroupMembershipAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Every membership with who owns it; removing a source-synced one revokes it, and a revocation can be lifted."""

    list_display = ("member", "group", "origin", "state", "revoked_by", "revoked_at")
    list_filter = ("origin", RevokedFilter, "group__source")
    search_fields = ("member", "group__principal", "group__name")
    list_select_related = ("group", "revoked_by")
    autocomplete_fields = ("group",)
    fields = ("group", "member", "origin", "revoked_at", "revoked_by")
    readonly_fields = ("origin", "revoked_at", "revoked_by")
    actions = ["remove_selected", "lift_selected"]

    @admin.display(description="state")
    def state(self, obj: GroupMembership) -> str:
        return "revoked" if obj.revoked else "active"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.origin == GroupMembership.Origin.SOURCE:
            return (*self.readonly_fields, "group", "member")  # the source owns it: revoke it instead
        return self.readonly_fields

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # "Remove" says what happens to source-synced rows
        return actions

    def delete_model(self, request: HttpRequest, obj: GroupMembership) -> None:
        _report_removals(self, request, [services.remove_membership(obj, actor=request.user)])

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        if GroupMembership.objects.filter(pk=obj_id).exists():  # revoked, not deleted: no "deleted" message
            return HttpResponseRedirect(reverse("admin:identity_groupmembership_changelist"))
        return super().response_delete(request, obj_display, obj_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        _report_removals(self, request, [services.remove_membership(m, actor=request.user) for m in queryset])

    @admin.action(description="Remove selected (source-synced ones are revoked)", permissions=["delete"])
    def remove_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.delete_queryset(request, queryset.select_related("group"))

    @admin.action(description="Lift the revocation of selected", permissions=["change"])
    def lift_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        lifted = sum(services.lift_revocation(m, actor=request.user) for m in queryset.select_related("group"))
        self.message_user(request, f"{lifted} revocation(s) lifted.", messages.SUCCESS)


@admin.register(Account)
class AccountAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Employee, guest or unknown: only employees read as "everyone except external users" and their domains."""

    list_display = ("user", "status", "updated_at")
    list_filter = ("status",)
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user",)
    readonly_fields = ("updated_at",)

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        # Through the service, so that every change of status is audited.
        services.set_account_status(obj.user, obj.status, actor=request.user, surface="admin")


class AccountInline(admin.StackedInline):
    model = Account
    can_delete = False
    fields = ("status", "updated_at")
    readonly_fields = ("updated_at",)
    verbose_name_plural = "Citewise account (employee, guest or unknown)"


# django.contrib.auth.admin registers the stock UserAdmin when imported (above): swap in the same admin with
# the account status shown, filterable and editable on each user.
admin.site.unregister(get_user_model())


class IdentityInline(admin.StackedInline):  # stacked: each field has its own label (a tabular row has none)
    model = ExternalIdentity
    extra = 0
    fields = ("principal", "is_external", "created_at")
    readonly_fields = ("created_at",)
    verbose_name_plural = "Identities in other systems (what the sources' permissions name this user by)"


@admin.register(get_user_model())
class CitewiseUserAdmin(AuditedAdminMixin, UserAdmin):
    """A user with their identities, account status, and everything they read as (each principal with the route
    that gives it: identity → group → group) on one page."""

    inlines = [*UserAdmin.inlines, AccountInline, IdentityInline]
    # Plain multiple selects: the two-pane widget's icons carry ARIA their role does not allow (axe-core, WCAG 4.1.2).
    filter_horizontal = ()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Bookkeeping Django keeps, never typed in (and its split date/time inputs have no labels of their own).
        return (*super().get_readonly_fields(request, obj), "last_login", "date_joined", "effective_principals")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [*fieldsets, ("What this user reads as", {"fields": ("effective_principals",)})]

    @admin.display(description="Effective principals")
    def effective_principals(self, obj: Any) -> str:
        routes = selectors.principal_routes(obj)
        if not routes:
            return "None: the user is inactive and reads as nobody."
        names = dict(Group.objects.filter(principal__in=routes).values_list("principal", "name"))
        return format_html("<ul>{}</ul>", format_html_join("", "<li><code>{}</code> — {}{}</li>", (
            (principal, describe_principal(principal, names),
             " (through " + " → ".join(route[:-1]) + ")" if len(route) > 1 else "")
            for principal, route in sorted(routes.items(), key=lambda item: (len(item[1]), item[0])))))
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "account_status")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups", "account__status")
    list_select_related = ("account",)

    @admin.display(description="account", ordering="account__status")
    def account_status(self, obj: Any) -> str:
        account = getattr(obj, "account", None)
        return account.get_status_display() if account else Account.Status.UNKNOWN.label

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Account:
            return super().save_formset(request, form, formset, change)
        for account in formset.save(commit=False):
            services.set_account_status(form.instance, account.status, actor=request.user, surface="admin")
