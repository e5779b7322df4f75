"""mysite URL Configuration: the admin, and a few views behind the sidecar."""
from django.contrib import admin
from django.urls import path

from myapp import views

urlpatterns = [
    path('', views.home),
    path('admin/', admin.site.urls),
    path('whoami/', views.whoami),
    path('csrf/', views.csrf),
    path('notes/', views.notes),
]
