<?php
// Front page of the adminer:5.3.0 stand-in (Debian's Adminer 4.8.1, see Dockerfile).
// As the official image's index.php: Adminer with the login form's server field
// prefilled from ADMINER_DEFAULT_SERVER ("db" when unset). getenv(), not $_ENV:
// Debian's php.ini leaves the environment out of $_ENV (variables_order = GPCS).
function adminer_object() {
    class StandinAdminer extends Adminer {
        function loginFormField($name, $heading, $value) {
            if ($name == 'server' && SERVER == '') {
                $server = getenv('ADMINER_DEFAULT_SERVER') ?: 'db';
                $value = str_replace('name="auth[server]" value=""', 'name="auth[server]" value="' . h($server) . '"', $value);
            }
            return parent::loginFormField($name, $heading, $value);
        }
    }
    return new StandinAdminer();
}

require __DIR__ . '/adminer.php';
