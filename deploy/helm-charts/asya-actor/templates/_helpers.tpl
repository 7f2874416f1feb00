{{/* Chart label value. */}}
{{- define "asya-actor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The actors to render, each fully merged: a list of dicts with name, namespace, transport, spec
fields and metadata. Input: the root context. Output: YAML of {"actors": [...]}.
*/}}
{{- define "asya-actor.actors" -}}
{{- $root := . }}
{{- $items := .Values.actors | default list }}
{{- if and (not $items) .Values.name }}
{{- $items = list (omit .Values "actors" "default" "tests" "namespace" "transport") }}
{{- end }}
{{- $out := list }}
{{- $seen := dict }}
{{- range $i, $item := $items }}
{{- if not (kindIs "map" $item) }}
{{- fail (printf "actors[%d]: must be an object with a name" $i) }}
{{- end }}
{{- if not $item.name }}
{{- fail (printf "actors[%d]: name is required" $i) }}
{{- end }}
{{- if hasKey $seen $item.name }}
{{- fail (printf "actors[%d]: actor %q is declared twice" $i $item.name) }}
{{- end }}
{{- $_ := set $seen $item.name true }}
{{- $a := mergeOverwrite (deepCopy ($root.Values.default | default dict)) (deepCopy $item) }}
{{- $transport := $a.transport | default $root.Values.transport }}
{{- if not $transport }}
{{- fail (printf "actor %q: transport is required (set `transport:` at the root or on the actor)" $item.name) }}
{{- end }}
{{- $_ := set $a "transport" $transport }}
{{- $_ := set $a "namespace" ($a.namespace | default $root.Values.namespace | default $root.Release.Namespace) }}
{{- /* shorthand -> the asya-runtime container */}}
{{- if or $a.image $a.handler $a.env $a.resources }}
{{- $workload := $a.workload | default dict }}
{{- $template := $workload.template | default dict }}
{{- $podSpec := $template.spec | default dict }}
{{- $containers := list }}
{{- $found := false }}
{{- range $c := ($podSpec.containers | default list) }}
{{- if eq $c.name "asya-runtime" }}
{{- $found = true }}
{{- $c = deepCopy $c }}
{{- if $a.image }}{{- $_ := set $c "image" $a.image }}{{- end }}
{{- if $a.resources }}{{- $_ := set $c "resources" $a.resources }}{{- end }}
{{- $extra := $a.env | default list }}
{{- if $a.handler }}{{- $extra = append $extra (dict "name" "ASYA_HANDLER" "value" $a.handler) }}{{- end }}
{{- $env := list }}
{{- range $e := ($c.env | default list) }}
{{- $replaced := false }}
{{- range $x := $extra }}{{- if eq $x.name $e.name }}{{- $replaced = true }}{{- end }}{{- end }}
{{- if not $replaced }}{{- $env = append $env $e }}{{- end }}
{{- end }}
{{- $env = concat $env $extra }}
{{- if $env }}{{- $_ := set $c "env" $env }}{{- end }}
{{- end }}
{{- $containers = append $containers $c }}
{{- end }}
{{- if not $found }}
{{- fail (printf "actor %q: image/handler/env/resources need the workload's asya-runtime container" $item.name) }}
{{- end }}
{{- $_ := set $podSpec "containers" $containers }}
{{- $_ := set $template "spec" $podSpec }}
{{- $_ := set $workload "template" $template }}
{{- $_ := set $a "workload" $workload }}
{{- end }}
{{- $out = append $out $a }}
{{- end }}
{{- dict "actors" $out | toYaml }}
{{- end }}
