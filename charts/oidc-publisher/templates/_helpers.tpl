{{/* Name of the chart, or nameOverride. */}}
{{- define "oidc-publisher.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, else the release name when
it contains the chart name, else release-chart.
*/}}
{{- define "oidc-publisher.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "oidc-publisher.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "oidc-publisher.labels" -}}
helm.sh/chart: {{ include "oidc-publisher.chart" . }}
{{ include "oidc-publisher.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "oidc-publisher.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oidc-publisher.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "oidc-publisher.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "oidc-publisher.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The leader-election Lease; the Role grants get/update on this name only. */}}
{{- define "oidc-publisher.leaseName" -}}
{{- default (include "oidc-publisher.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "oidc-publisher.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The subject every binding names. */}}
{{- define "oidc-publisher.subject" -}}
- kind: ServiceAccount
  name: {{ include "oidc-publisher.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}
