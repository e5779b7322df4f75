from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.middleware.csrf import get_token


def home(request):
    """A public page (the Caddyfile's `public /`): no identity here."""
    return JsonResponse({"page": "home", "user": request.user.username or None})


@login_required
def whoami(request):
    """The user the sidecar let through, and Django's own session for it."""
    return JsonResponse({
        "user": request.user.username,
        "django_session": request.session.session_key,
    })


@login_required
def csrf(request):
    """The CSRF token as a template ({% csrf_token %}) or a meta tag gets it."""
    return JsonResponse({"csrf_token": get_token(request)})


@login_required
def notes(request):
    """An unsafe request: CsrfViewMiddleware has checked it before it gets here."""
    if request.method != "POST":
        return JsonResponse({"detail": "POST a note."}, status=405)
    return JsonResponse({"saved": request.body.decode(), "by": request.user.username}, status=201)
