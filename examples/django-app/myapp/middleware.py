from django.contrib.auth.middleware import RemoteUserMiddleware


class SidecarUserMiddleware(RemoteUserMiddleware):
    """The user is the one caddy-session-auth names in Remote-User.

    The sidecar strips every client-sent spelling of its identity headers, so
    only it can set this one; on a public path it sends none, and Django's
    request.user is anonymous there (RemoteUserMiddleware logs out).
    """

    header = "HTTP_REMOTE_USER"

    def process_request(self, request):
        # Django's login() (which RemoteUserMiddleware calls when the user
        # changes) rotates the CSRF token, as it should after a password
        # login. Here the login happened at the sidecar, which already gave
        # the browser a fresh `csrftoken`, the token both the sidecar and
        # Django check; a rotated one would reach neither the browser (the
        # sidecar drops an app's Set-Cookie for its cookies) nor pass the
        # sidecar's check. Keep the browser's token for this request, so that
        # {% csrf_token %} and get_token() render the token that works.
        token = request.META.get("CSRF_COOKIE")
        super().process_request(request)
        if token is not None:
            request.META["CSRF_COOKIE"] = token
