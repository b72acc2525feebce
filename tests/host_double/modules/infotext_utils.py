"""Double of ``modules/infotext_utils.py`` (v1.10.1): the paste-parameters registry the tab adds its button to.

``ParamBinding`` keeps the host's signature (L23-33); ``register_paste_params_button(binding)`` appends it to
``registered_param_bindings`` (L135-137), which the host connects after every ``on_ui_tabs`` callback ran
(``connect_paste_params_buttons``, L139, called from ui.py L1137).
"""

registered_param_bindings = []


class ParamBinding:
    def __init__(self, paste_button, tabname, source_text_component=None, source_image_component=None,
                 source_tabname=None, override_settings_component=None, paste_field_names=None):
        self.paste_button = paste_button
        self.tabname = tabname
        self.source_text_component = source_text_component
        self.source_image_component = source_image_component
        self.source_tabname = source_tabname
        self.override_settings_component = override_settings_component
        self.paste_field_names = paste_field_names or []


def register_paste_params_button(binding: ParamBinding):
    registered_param_bindings.append(binding)
