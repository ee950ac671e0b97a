# fetch -> degrade: verified datasets, then the authors' degradations.
# Downloads (data/raw) and your manual datasets (data/manual) are never outputs: re-runs never delete them.


rule fetch:
    input:
        unpack(W.inputs("fetch-{dataset}")),
    output:
        W.at("data/verified/{dataset}.json"),
    log:
        W.at("logs/fetch/{dataset}.log"),
    params:
        plan=W.plan_file,
    resources:
        downloads=1,
    conda:
        "../envs/ramit.yaml"
    shell:
        "ramit fetch --plan {params.plan} {wildcards.dataset} > {log} 2>&1"


rule degrade:
    input:
        unpack(W.inputs("degrade-{setting}-{dataset}")),
    output:
        directory(W.at("data/degraded/{setting}/{dataset}")),
    log:
        W.at("logs/degrade/{setting}/{dataset}.log"),
    params:
        plan=W.plan_file,
    conda:
        "../envs/ramit.yaml"
    shell:
        "ramit degrade --plan {params.plan} {wildcards.setting} {wildcards.dataset} > {log} 2>&1"


rule degrade_train:
    input:
        unpack(W.inputs("degrade-train-{key}-{dataset}")),
    output:
        directory(W.at("data/degraded/train/{key}/{dataset}")),
    log:
        W.at("logs/degrade/train/{key}/{dataset}.log"),
    params:
        plan=W.plan_file,
    conda:
        "../envs/ramit.yaml"
    shell:
        "ramit degrade --plan {params.plan} --train {wildcards.key} {wildcards.dataset} > {log} 2>&1"


rule fetch_weights:
    input:
        unpack(W.inputs("fetch-weights-{file}")),
    output:
        W.at("weights/released/{file}.pth"),
    log:
        W.at("logs/fetch_weights/{file}.log"),
    params:
        plan=W.plan_file,
    resources:
        downloads=1,
    conda:
        "../envs/ramit.yaml"
    shell:
        "ramit fetch-weights --plan {params.plan} {wildcards.file}.pth > {log} 2>&1"
