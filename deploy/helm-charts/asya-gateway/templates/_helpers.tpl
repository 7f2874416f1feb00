{{- define "asya-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "asya-gateway.fullname" -}}
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
{{- define "asya-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asya-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- define "asya-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "asya-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: asya
{{- end }}
{{- define "asya-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asya-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}
{{- define "asya-gateway.secretName" -}}
{{- include "asya-gateway.fullname" . }}
{{- end }}
{{- define "asya-gateway.hasDatabase" -}}
{{- if or .Values.database.existingSecret .Values.database.url }}true{{ end }}
{{- end }}
{{- /* Client tokens: given, else (when generating) the ones already in the release Secret, else
a new random one. Empty when none are wanted. */}}
{{- define "asya-gateway.clientTokens" -}}
{{- if .Values.auth.clientTokens }}
{{- join "," .Values.auth.clientTokens }}
{{- else if and .Values.auth.generateClientToken (not .Values.auth.allowUnauthenticated) }}
{{- $s := lookup "v1" "Secret" .Release.Namespace (include "asya-gateway.secretName" .) }}
{{- if and $s $s.data (hasKey $s.data "client-tokens") }}
{{- index $s.data "client-tokens" | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
{{- end }}
{{- define "asya-gateway.authSecretName" -}}
{{- .Values.auth.existingSecret | default (include "asya-gateway.secretName" .) }}
{{- end }}
{{- define "asya-gateway.hasClientTokens" -}}
{{- if or .Values.auth.existingSecret .Values.auth.clientTokens (and .Values.auth.generateClientToken (not .Values.auth.allowUnauthenticated)) }}true{{ end }}
{{- end }}
