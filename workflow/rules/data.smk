# fetch -> degrade: verified raw datasets, then the authors' degradations.


rule fetch:
    output:
        directory("data/raw/{dataset}"),
    input:
        deps("data/raw/{dataset}"),
    params:
        cmd=cmd("data/raw/{dataset}"),
    resources:
        downloads=1,
    shell:
        "{params.cmd}"


rule degrade:
    output:
        directory("data/degraded/{setting}/{dataset}"),
    input:
        deps("data/degraded/{setting}/{dataset}"),
    params:
        cmd=cmd("data/degraded/{setting}/{dataset}"),
    shell:
        "{params.cmd}"


rule degrade_train:
    output:
        directory("data/degraded/train/{key}/{dataset}"),
    input:
        deps("data/degraded/train/{key}/{dataset}"),
    params:
        cmd=cmd("data/degraded/train/{key}/{dataset}"),
    shell:
        "{params.cmd}"


rule fetch_weights:
    output:
        "weights/released/{file}",
    input:
        deps("weights/released/{file}"),
    params:
        cmd=cmd("weights/released/{file}"),
    resources:
        downloads=1,
    shell:
        "{params.cmd}"
