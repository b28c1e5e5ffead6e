{{/* Chart name, cut to 63 characters. */}}
{{- define "nixyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; room is left for the longest suffix (-operator-leader). */}}
{{- define "nixyard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "nixyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nixyard.labels" -}}
helm.sh/chart: {{ include "nixyard.chart" . }}
{{ include "nixyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "nixyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nixyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nixyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "nixyard.buildNamespace" -}}
{{- default .Release.Namespace .Values.buildNamespace }}
{{- end }}

{{- define "nixyard.storeClaim" -}}
{{- default (printf "%s-store" (include "nixyard.fullname" .)) .Values.store.existingClaim }}
{{- end }}

{{/* The Redis URL as an EnvVar (value or secretKeyRef); empty when there is none. */}}
{{- define "nixyard.redisEnv" -}}
{{- if .Values.redis.enabled }}
- name: NIXYARD_REDIS_URL
  value: {{ printf "redis://%s-redis:6379" (include "nixyard.fullname" .) | quote }}
{{- else if .Values.redis.url }}
- name: NIXYARD_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- else if .Values.redis.existingSecret.name }}
- name: NIXYARD_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret.name }}
      key: {{ .Values.redis.existingSecret.key }}
{{- end }}
{{- end }}

{{/* Hardened defaults for the gateway, operator and Redis containers. */}}
{{- define "nixyard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end }}

{{- define "nixyard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}
