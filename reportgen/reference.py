"""Documentation generated from the model: the field reference and starter project files."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from .regions import Region
from .schema import UNIT_FIELDS, Project, labels_of, nested_model

_TYPE_NAMES = {
    "_text": "文字",
    "_required_text": "文字（不能为空）",
    "_money": "金额（如 180.97万元、1,663,900.00元）",
    "_rate": "百分比（如 99.32%）",
    "_points": "分数",
    "_points_or_mark": "分数，或 无/不适用",
    "_year": "年度（如 2022）",
    "_date": "日期（如 2021-08-09）",
    "parse": "可选值",
}


def _type_name(model: type[BaseModel], name: str) -> str:
    annotation = model.model_fields[name].annotation
    inner = nested_model(model, name)
    if inner is not None:
        return f"{'列表' if typing.get_origin(annotation) is list else '映射'}（{inner.__doc__.splitlines()[0]}）"
    for arg in (annotation, *typing.get_args(annotation)):
        for meta in getattr(arg, "__metadata__", ()):
            function = getattr(meta, "func", None)
            if function is not None:
                return _TYPE_NAMES.get(function.__name__, "文字")
    if typing.get_origin(annotation) is dict or dict in typing.get_args(annotation):
        return "映射（一级指标: 分值）"
    return "文字"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        label, aliases = labels_of(model, name)
        required = "是" if info.is_required() else ""
        other = "、".join(aliases)
        kind = _type_name(model, name)
        rows.append(f"| `{prefix}{name}` | {label} | {other} | {kind} | {required} | {info.description} |")
        inner = nested_model(model, name)
        if inner is not None:
            rows.extend(_rows(inner, f"{prefix}{name}."))
    return rows


def field_reference() -> str:
    """The Markdown field reference: key, Chinese label, other spellings, type, meaning."""
    units = "、".join(labels_of(Project, name)[0] for name in UNIT_FIELDS)
    return "\n".join(
        [
            "# 字段说明（reportgen fields）",
            "",
            "每个键都可以写英文名、表上的中文标签或「其他写法」中的任何一种。",
            f"单位文件 `_unit.yaml` 可设置：{units}；同一文件夹（及其子文件夹）中的项目文件继承这些值，并可覆盖。",
            "绩效指标和评分表中，一级指标、二级指标留空表示「同上一行」。",
            "",
            "| 键 | 中文标签 | 其他写法 | 类型 | 必填 | 说明 |",
            "| --- | --- | --- | --- | --- | --- |",
            *_rows(Project, ""),
            "",
        ]
    )


def _indicator_block(region: Region) -> list[str]:
    lines = ["绩效指标:"]
    for category in region.categories:
        lines += [
            f"  - 一级指标: {category.name}",
            "    二级指标: 数量指标          # 如 数量指标、质量指标、时效指标、成本指标",
            "    三级指标: 请填写指标名称",
            '    年度指标值: "≥90%"          # 目标值；≥、≤、以上、低于 等决定正向/反向',
            '    实际完成值: "95%"',
            f"    分值: {category.share}",
            "    得分:                      # 定量指标可不填，由规则计算；定性指标必填",
            "    偏差原因分析及改进措施:    # 得分低于分值时必填",
        ]
    return lines


def _scorecard_block(region: Region) -> list[str]:
    lines = ["评分表:"]
    for category in region.categories:
        lines += [
            f"  - 一级指标: {category.name}",
            "    二级指标: 请填写",
            "    三级指标: 请填写",
            f"    指标分值: {category.share}",
            "    评价得分:",
        ]
    row = region.execution.scorecard_row
    if row:
        lines.append(f"  # 其中「{row}」一行的得分由资金数据计算，可不填评价得分")
    return lines


def starter_yaml(region: Region) -> str:
    """A commented project file in Chinese keys for a region; valid once its blanks are filled."""
    unit = region.money.unit
    table = _scorecard_block(region) if region.score_table == "scorecard" else _indicator_block(region)
    return "\n".join(
        [
            f"# {region.name} {region.title}：项目数据文件（由 reportgen new 生成）",
            "# 编辑后运行：reportgen validate 本文件；金额可写 180.97万元 或 1,663,900.00元。",
            f"地区: {region.id}",
            "年度: 2024",
            "项目编号:",
            "项目名称: 请填写项目名称",
            "主管部门:",
            "实施单位:",
            "项目资金:",
            f"  金额单位: {unit}            # 不带单位的金额按此单位理解",
            "  年度资金总额:",
            "    年初预算数: 0",
            "    全年预算数: 0",
            "    全年执行数: 0",
            "  当年财政拨款:",
            "    年初预算数: 0",
            "    全年预算数: 0",
            "    全年执行数: 0",
            f"  分值: {region.execution.weight}",
            "预期目标: 请填写年度总体目标",
            "实际完成情况: 请填写实际完成情况",
            *table,
            "",
        ]
    )
