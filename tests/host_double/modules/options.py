"""Double of ``modules/options.py`` (v1.10.1): ``OptionInfo``, ``options_section`` and ``Options.add_option``.

- ``OptionInfo.__init__`` keeps the host's full signature (L13-34); the chainable helpers are not used.
- ``options_section(section_identifier, options_dict)`` (L68-77) sets ``.section`` (and ``.category_id`` for a
  3-tuple) on each option and returns the dict.
- ``Options`` keeps ``data`` and ``data_labels``; ``add_option(key, info)`` (L256-259) registers the label and the
  default; reading an attribute returns the saved value or the registered default (``__getattr__``, L99-110).
"""


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None, section=None,
                 refresh=None, comment_before='', comment_after='', infotext=None, restrict_api=False,
                 category_id=None):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api


def options_section(section_identifier, options_dict):
    for v in options_dict.values():
        if len(section_identifier) == 2:
            v.section = section_identifier
        elif len(section_identifier) == 3:
            v.section = section_identifier[0:2]
            v.category_id = section_identifier[2]
    return options_dict


class Options:
    def __init__(self, data_labels):
        super().__setattr__("data_labels", dict(data_labels))
        super().__setattr__("data", {key: info.default for key, info in data_labels.items()})

    def __setattr__(self, key, value):
        self.data[key] = value

    def __getattr__(self, item):
        if item in self.data:
            return self.data[item]
        if item in self.data_labels:
            return self.data_labels[item].default
        raise AttributeError(item)

    def add_option(self, key, info):
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default
