{{- define "asya-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya-operator.fullname" -}}
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

{{- define "asya-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asya-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "asya-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "asya-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: asya
{{- end }}

{{- define "asya-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asya-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The registry JSON, checked: every entry has a known type. */}}
{{- define "asya-operator.transports" -}}
{{- range $name, $t := .Values.transports }}
{{- if not (kindIs "map" $t) }}
{{- fail (printf "transports.%s: must be an object with type, enabled and config" $name) }}
{{- end }}
{{- if not (has $t.type (list "rabbitmq" "sqs")) }}
{{- fail (printf "transports.%s.type: must be rabbitmq or sqs, got %v" $name $t.type) }}
{{- end }}
{{- range $k, $_ := $t }}
{{- if not (has $k (list "type" "enabled" "config")) }}
{{- fail (printf "transports.%s.%s: unknown key (known: type, enabled, config)" $name $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- dict "transports" (.Values.transports | default dict) | toJson }}
{{- end }}
